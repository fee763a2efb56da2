package directory

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/certcenter/certcenter/store"
)

// SASL EXTERNAL (RFC 4422 appendix A, RFC 4513 5.2.3): a health
// information system with a certificate of its own binds with it. The
// listeners request a client certificate in every TLS handshake (ldaps
// and StartTLS) without requiring one, so clients without a certificate
// connect as before; a certificate is checked only when a Bind asks for
// EXTERNAL:
//
//   - it must chain to one of this server's CA certificates (or a root of
//     ldap.client_ca_file), be valid now and allow clientAuth;
//   - one of ours must not be revoked (its store record), and must be in
//     the store at all;
//   - its public key must be the ClientCertKey of a usable directory
//     account (found by the account index, accounts.go);
//   - an authzId in the bind, if any, must name that account: "dn:<its
//     bind DN>" or "u:<its ID>" (RFC 4513 5.2.1.8); else invalidCredentials.
//
// Without a certificate, or in clear, EXTERNAL gets inappropriateAuthentication
// (RFC 4513 5.2.3). Other mechanisms get authMethodNotSupported.

const mechExternal = "EXTERNAL"

// loadClientRoots reads ldap.client_ca_file.
func loadClientRoots(file string) ([]*x509.Certificate, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ldap.client_ca_file: %w", err)
	}
	var roots []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ldap.client_ca_file: %w", err)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("ldap.client_ca_file: %s holds no PEM certificate", file)
	}
	return roots, nil
}

// serverTLS is the TLS configuration of the listeners: opts.TLS asking
// for a client certificate, verified at an EXTERNAL bind rather than in
// the handshake, so an unknown certificate does not stop a client that
// binds otherwise.
func serverTLS(base *tls.Config) *tls.Config {
	if base == nil || base.ClientAuth != tls.NoClientCert {
		return base
	}
	c := base.Clone()
	c.ClientAuth = tls.RequestClientCert
	return c
}

// saslBind is a decoded SaslCredentials (RFC 4511 4.2).
type saslBind struct {
	mechanism string
	creds     []byte
	hasCreds  bool
}

func parseSASL(body []byte) (saslBind, error) {
	var s saslBind
	m, rest, err := readElem(body)
	if err != nil || m.tag != 0x04 {
		return s, errBadBind
	}
	s.mechanism = string(m.body)
	if len(rest) > 0 {
		c, rest, err := readElem(rest)
		if err != nil || c.tag != 0x04 || len(rest) != 0 {
			return s, errBadBind
		}
		s.creds, s.hasCreds = c.body, true
	}
	return s, nil
}

// externalBind authenticates a connection by its client certificate.
// peer is the certificate chain the client sent in the TLS handshake.
func (d *Directory) externalBind(ctx context.Context, peer []*x509.Certificate, authzID []byte) (account, result) {
	if len(peer) == 0 {
		return account{}, result{code: resultInappropriateAuth, diag: "SASL EXTERNAL needs a client certificate in the TLS handshake"}
	}
	leaf := peer[0]
	now := d.now()
	if err := d.verifyClient(peer, now); err != nil {
		d.log.Info("ldap EXTERNAL bind refused", "subject", leaf.Subject.String(), "err", err)
		return account{}, result{code: resultInvalidCredentials, diag: "client certificate not accepted"}
	}
	key := store.ClientCertKey(leaf.RawSubjectPublicKeyInfo)
	gen := d.acctIdx.gen.Load()
	ids, err := d.acctIdx.lookup(ctx, d.st, "", key)
	if err != nil {
		d.log.Error("ldap bind: reading directory accounts", "err", err)
		return account{}, result{code: resultUnavailable}
	}
	var a account
	refused := ""
	err = d.st.View(ctx, func(tx *store.Tx) error {
		if revoked, err := d.certRevoked(tx, leaf); err != nil {
			return err
		} else if revoked {
			refused = "revoked"
			return nil
		}
		var rec *store.DirAccount
		for _, id := range ids {
			r, err := tx.DirAccount(id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if r.ClientCertKey == key && r.Usable(now) {
				rec = r
				break
			}
		}
		if rec == nil {
			refused = "no usable account"
			return nil
		}
		g, err := d.accountGrant(tx, rec, gen, leaf.NotAfter)
		if err != nil {
			return err
		}
		g.cert = leaf
		n, _ := normDN(rec.DN)
		a = account{dn: rec.DN, norm: n, grant: g}
		return nil
	})
	switch {
	case err != nil:
		d.log.Error("ldap EXTERNAL bind", "err", err)
		return account{}, result{code: resultUnavailable}
	case refused != "":
		d.log.Info("ldap EXTERNAL bind refused", "subject", leaf.Subject.String(), "reason", refused)
		return account{}, result{code: resultInvalidCredentials, diag: "client certificate not accepted"}
	}
	if len(authzID) > 0 && !a.authorizes(string(authzID)) {
		// RFC 4513 5.2.1.8: not permitted to assume that identity
		d.log.Info("ldap EXTERNAL bind refused", "account", a.grant.account, "authzid", string(authzID))
		return a, result{code: resultInvalidCredentials, diag: "the authorization identity is not this certificate's account"}
	}
	return a, result{code: resultSuccess}
}

// authorizes says whether authzID (RFC 4513 5.2.1.8: "dn:<DN>" or
// "u:<userid>") names directory account a.
func (a account) authorizes(authzID string) bool {
	switch {
	case strings.HasPrefix(authzID, "dn:"):
		n, ok := normDN(authzID[3:])
		return ok && n == a.norm
	case strings.HasPrefix(authzID, "u:"):
		return authzID[2:] == a.grant.dirAccount
	}
	return false
}

// verifyClient checks a client's chain against this server's CA
// certificates and the roots of ldap.client_ca_file, at now, for clientAuth.
func (d *Directory) verifyClient(peer []*x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	for _, iss := range d.opts.CA.Issuers() {
		roots.AddCert(iss.Cert)
	}
	for _, r := range d.clientRoots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// certRevoked says whether c, if this server's CA issued it, is revoked
// or unknown to the store. A certificate of a root of ldap.client_ca_file
// is not: its revocation is not known here.
func (d *Directory) certRevoked(tx *store.Tx, c *x509.Certificate) (bool, error) {
	ours := false
	for _, iss := range d.opts.CA.Issuers() {
		if bytes.Equal(c.RawIssuer, iss.Cert.RawSubject) && c.CheckSignatureFrom(iss.Cert) == nil {
			ours = true
			break
		}
	}
	if !ours {
		return false, nil
	}
	rec, err := tx.Cert(c.SerialNumber.Bytes())
	if errors.Is(err, store.ErrNotFound) {
		return true, nil // signed by our key but not in our records: not trusted
	}
	if err != nil {
		return false, fmt.Errorf("reading client certificate %x: %w", c.SerialNumber, err)
	}
	return rec.Status == store.StatusRevoked || !bytes.Equal(rec.DER, c.Raw), nil
}
