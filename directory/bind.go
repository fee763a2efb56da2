package directory

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
)

// readOnly answers every write: the RA publishes the directory.
var readOnly = result{code: resultUnwillingToPerform, diag: "the directory is read-only: it is published by the RA"}

// account is a service account that may bind (ldap.accounts).
type account struct {
	dn   string // as configured, returned by WhoAmI
	norm string
	hash []byte
	// grant is what the account may read.
	grant *grant
}

// accounts indexes the configured service accounts by normalized DN and
// makes the hash an unknown name is checked against, so that a bind with
// an unknown name costs what one with a wrong password does and does not
// tell which names exist.
func loadAccounts(cfg []config.LDAPAccount) (map[string]account, []byte, error) {
	accounts := map[string]account{}
	cost := 0
	for _, a := range cfg {
		n, ok := normDN(a.DN)
		if !ok {
			return nil, nil, fmt.Errorf("ldap.accounts: bad DN %q", a.DN)
		}
		c, err := bcrypt.Cost([]byte(a.PasswordHash))
		if err != nil {
			return nil, nil, fmt.Errorf("ldap.accounts: password hash of %q: %w", a.DN, err)
		}
		cost = max(cost, c)
		accounts[n] = account{dn: a.DN, norm: n, hash: []byte(a.PasswordHash), grant: &grant{level: accessService, account: a.DN}}
	}
	if len(accounts) == 0 {
		return accounts, nil, nil // every name is unknown: there is nothing to hide
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no account has this password"), cost)
	if err != nil {
		return nil, nil, fmt.Errorf("ldap.accounts: %w", err)
	}
	return accounts, dummy, nil
}

// checkPassword returns the account a simple bind authenticates, or false.
// It runs bcrypt (tens of milliseconds of CPU), at most cap(bindSem) at a
// time, so a flood of binds cannot starve the searches.
func (d *Directory) checkPassword(ctx context.Context, name string, password []byte) (account, resultCode) {
	select {
	case d.bindSem <- struct{}{}:
	case <-ctx.Done():
		return account{}, resultUnavailable
	}
	defer func() { <-d.bindSem }()
	n, ok := normDN(name)
	a, known := d.accounts[n]
	usable := true
	if ok && !known {
		var err error
		if a, known, usable, err = d.directoryAccount(ctx, n); err != nil {
			d.log.Error("ldap bind: reading directory accounts", "err", err)
			return account{}, resultUnavailable
		}
	}
	if !ok || !known {
		_ = bcrypt.CompareHashAndPassword(d.unknownHash(), password)
		return account{}, resultInvalidCredentials
	}
	// an expired or revoked account costs the same bcrypt as a live one
	// and fails the same way: the client learns nothing from the timing
	if bcrypt.CompareHashAndPassword(a.hash, password) != nil || !usable {
		d.log.Info("ldap bind failed", "dn", a.dn, "usable", usable)
		return a, resultInvalidCredentials // the account, for its metrics only
	}
	return a, resultSuccess
}

// unknownHash is the hash an unknown name's password is checked against:
// of the service accounts' highest cost, else of the cost directory
// accounts are made with, made once on first use.
func (d *Directory) unknownHash() []byte {
	d.dummyOnce.Do(func() {
		if d.dummyHash == nil {
			d.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no account has this password"), bcrypt.DefaultCost)
		}
	})
	return d.dummyHash
}

// directoryAccount finds the directory account (store.DirAccount) with
// normalized bind DN n through the account index (accounts.go), and the
// grant it has now: its approved organisations. usable is false for an
// expired or revoked one; of several with the DN, a usable one wins.
func (d *Directory) directoryAccount(ctx context.Context, n string) (a account, found, usable bool, err error) {
	gen := d.acctIdx.gen.Load() // before the reads: a change after them moves it
	ids, err := d.acctIdx.lookup(ctx, d.st, n, "")
	if err != nil || len(ids) == 0 {
		return a, false, false, err
	}
	now := d.now()
	err = d.st.View(ctx, func(tx *store.Tx) error {
		var rec *store.DirAccount
		for _, id := range ids {
			r, err := tx.DirAccount(id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if dn, ok := normDN(r.DN); ok && dn == n && (rec == nil || !rec.Usable(now) && r.Usable(now)) {
				rec = r
			}
		}
		if rec == nil {
			return nil
		}
		g, err := d.accountGrant(tx, rec, gen, time.Time{})
		if err != nil {
			return err
		}
		a = account{dn: rec.DN, norm: n, hash: []byte(rec.PasswordHash), grant: g}
		// an account without a password (EXTERNAL only) is checked
		// against the unknown name's hash: it fails, at the same cost
		found, usable = true, rec.Usable(now) && rec.PasswordHash != ""
		if rec.PasswordHash == "" {
			a.hash = d.unknownHash()
		}
		return nil
	})
	return a, found, usable, err
}

var errBadBind = errors.New("bad bind request")

// bindRequest is a decoded BindRequest; auth is the authentication choice
// (0x80 simple, 0xa3 SASL).
type bindRequest struct {
	version int64
	name    string
	auth    elem
}

func parseBind(b []byte) (bindRequest, error) {
	var r bindRequest
	ver, rest, err := readElem(b)
	if err != nil || ver.tag != 0x02 {
		return r, errBadBind
	}
	if r.version, err = parseInt(ver.body); err != nil {
		return r, errBadBind
	}
	nameE, rest, err := readElem(rest)
	if err != nil || nameE.tag != 0x04 {
		return r, errBadBind
	}
	r.name = string(nameE.body)
	if r.auth, _, err = readElem(rest); err != nil {
		return r, errBadBind
	}
	return r, nil
}

// bind answers a BindRequest (RFC 4511 4.2, RFC 4513). Anonymous binds
// always succeed, so clients that bind first (ldapsearch -x) can read the
// rootDSE; with ldap.anonymous_read off their searches of the DIT are
// refused instead. A password bind runs on a goroutine of its own and the
// reader waits for it before the next request (conn.binding): another
// connection's bind never waits behind this one's bcrypt, and every
// request sent after the bind runs with its outcome.
func (c *conn) bind(m *message, start time.Time) error {
	req, err := parseBind(m.op.body)
	if err != nil {
		return err
	}
	c.setAccount(nil) // a bind starts anonymous until it succeeds (RFC 4511 4.2.1)
	name, auth, password := req.name, req.auth, req.auth.body
	var r result
	switch {
	case req.version != 3:
		r = result{code: resultProtocolError, diag: "only LDAPv3 is supported"}
	case auth.tag == 0xa3:
		sasl, err := parseSASL(auth.body)
		if err != nil {
			return err
		}
		if sasl.mechanism != mechExternal {
			r = result{code: resultAuthMethodNotSupported, diag: "SASL mechanism " + sasl.mechanism + " is not supported: use EXTERNAL with a client certificate, or a simple bind over TLS"}
			break
		}
		r = c.bindExternal(sasl.creds)
	case auth.tag != 0x80:
		r = result{code: resultAuthMethodNotSupported, diag: "unknown authentication choice"}
	case name == "" && len(password) == 0:
		r = result{code: resultSuccess} // anonymous (RFC 4513 5.1.1)
	case len(password) == 0:
		// RFC 4513 5.1.2: an unauthenticated bind must not pass as authenticated.
		r = result{code: resultUnwillingToPerform, diag: "unauthenticated bind (name without password) is not allowed"}
	case !c.isTLS.Load() && !c.d.opts.Config.AllowCleartextBind:
		r = result{code: resultConfidentialityRequired, diag: "a password bind needs TLS: use ldaps:// or StartTLS"}
	default:
		src := sourceOf(c.nc.RemoteAddr())
		if wait := c.d.limiter.wait(src); wait > 0 {
			c.d.metrics.binds.WithLabelValues("unknown", "throttled").Inc()
			r = result{code: resultBusy, diag: fmt.Sprintf("too many failed binds from %s: retry in %ds", src, int(wait.Seconds())+1)}
			break
		}
		done := make(chan struct{})
		c.binding = done
		c.inflight.Add(1)
		go func() {
			defer c.inflight.Done()
			defer close(done) // after the response: later requests answer after the bind
			a, code := c.d.checkPassword(c.ctx, name, password)
			c.recordBind(&a, code, src)
			c.respond(m.id, opBindResponse, "bind", start, result{code: code}, nil)
		}()
		return nil
	}
	c.respond(m.id, opBindResponse, "bind", start, r, nil)
	return nil
}

// bindExternal answers a SASL EXTERNAL bind (external.go) on the reader
// goroutine: it costs a few store reads, no bcrypt.
func (c *conn) bindExternal(authzID []byte) result {
	if !c.isTLS.Load() {
		return result{code: resultInappropriateAuth, diag: "SASL EXTERNAL needs TLS with a client certificate: use ldaps:// or StartTLS"}
	}
	src := sourceOf(c.nc.RemoteAddr())
	if wait := c.d.limiter.wait(src); wait > 0 {
		c.d.metrics.binds.WithLabelValues("unknown", "throttled").Inc()
		return result{code: resultBusy, diag: fmt.Sprintf("too many failed binds from %s: retry in %ds", src, int(wait.Seconds())+1)}
	}
	a, r := c.d.externalBind(c.ctx, c.peerCerts, authzID)
	c.recordBind(&a, r.code, src)
	return r
}

// recordBind records the outcome of a password or EXTERNAL bind from src: the
// account on success, a failure for the address's bind limiter, the count.
func (c *conn) recordBind(a *account, code resultCode, src string) {
	label := "unknown"
	if a.grant != nil {
		label = a.grant.account
	}
	switch code {
	case resultSuccess:
		c.setAccount(a)
		c.d.metrics.binds.WithLabelValues(label, "success").Inc()
	case resultInvalidCredentials:
		c.d.limiter.failed(src)
		c.d.metrics.binds.WithLabelValues(label, "invalid").Inc()
	default:
		c.d.metrics.binds.WithLabelValues(label, "error").Inc()
	}
}

// setAccount records the bound account; nil is anonymous.
func (c *conn) setAccount(a *account) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setGrantLocked(nil)
	c.bound = a != nil
	c.boundDN, c.boundID = "", ""
	if a != nil {
		c.boundDN, c.boundID = a.dn, a.norm
		c.setGrantLocked(a.grant)
	}
}

// setGrantLocked replaces the connection's grant, keeping the count of
// connections bound with each client certificate (accounts.go); callers
// hold c.mu.
func (c *conn) setGrantLocked(g *grant) {
	if old := c.grant; old != nil && old.cert != nil {
		c.d.acctIdx.releaseCert(hex.EncodeToString(old.cert.SerialNumber.Bytes()))
	}
	c.grant = g
	if g != nil && g.cert != nil {
		c.d.acctIdx.holdCert(hex.EncodeToString(g.cert.SerialNumber.Bytes()))
	}
}

// whoAmI answers the "Who am I?" extended operation (RFC 4532): the bound
// account as "dn:<DN>", empty when anonymous.
func (c *conn) whoAmI(m *message, start time.Time) {
	c.mu.Lock()
	authz := ""
	if c.bound {
		authz = "dn:" + c.boundDN
	}
	c.mu.Unlock()
	c.respond(m.id, opExtendedResponse, "whoami", start, result{code: resultSuccess}, appendString(nil, 0x8b, authz))
}
