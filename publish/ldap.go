package publish

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
)

// dial connects to the first of the target's URLs that answers, in order,
// upgrades with StartTLS if configured and binds. It returns the URL used.
func dial(t config.PublishTarget, tlsConf *tls.Config, password string) (*ldap.Conn, string, error) {
	var errs []error
	for _, u := range t.URLs {
		c, err := dialOne(t, u, tlsConf, password)
		if err == nil {
			return c, u, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
		if isBindRefused(err) {
			// The other servers share the directory's accounts: a
			// refused bind is not a reason to fail over.
			break
		}
	}
	return nil, "", errors.Join(errs...)
}

func dialOne(t config.PublishTarget, u string, tlsConf *tls.Config, password string) (*ldap.Conn, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	tc := tlsConf.Clone()
	tc.ServerName, _, _ = strings.Cut(pu.Host, ":")
	if h, _, err := net.SplitHostPort(pu.Host); err == nil {
		tc.ServerName = h
	}
	c, err := ldap.DialURL(u, ldap.DialWithDialer(&net.Dialer{Timeout: t.ConnectTimeout.D()}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, tlsHint(t, fmt.Errorf("connecting: %w", err))
	}
	c.SetTimeout(t.Timeout.D())
	if t.StartTLS {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, tlsHint(t, fmt.Errorf("StartTLS: %w", err))
		}
	}
	if t.BindDN != "" {
		if err := c.Bind(t.BindDN, password); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as %s: %w", t.BindDN, err)
		}
	}
	return c, nil
}

// tlsHint names what the server's certificate was checked against when it
// did not verify: the usual cause is a ca_file that is not the target's CA.
// (go-ldap's StartTLS error keeps only the text of the TLS error.)
func tlsHint(t config.PublishTarget, err error) error {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	if !errors.As(err, &cv) && !errors.As(err, &ua) && !errors.As(err, &hn) && !strings.Contains(err.Error(), "failed to verify certificate") {
		return err
	}
	against := "the system roots (ca_file is not set)"
	if t.CAFile != "" {
		against = "ca_file " + t.CAFile
	}
	return fmt.Errorf("%w (the server's TLS certificate does not verify against %s)", err, against)
}

func isBindRefused(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired)
}

// tlsConfig reads the target's CA file once.
func tlsConfig(t config.PublishTarget) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile == "" {
		return tc, nil
	}
	b, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("publish target %s: ca_file: %w", t.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("publish target %s: ca_file %s holds no PEM certificate", t.Name, t.CAFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// entry is the state one target entry must have.
type entry struct {
	dn      string
	classes []string
	// naming are the attributes a new entry needs besides those replaced
	// (its RDN's, sn for a person).
	naming map[string]string
	// replace are the attributes set to exactly these values (none: the
	// attribute is removed).
	replace map[string][][]byte
	// addFirst tries Add before Modify (a new certificate's entry is
	// usually new; a CA's entry usually exists).
	addFirst bool
}

// put makes the target's entry match e: Modify Replace of each attribute,
// or an Add (with missing parents) when the entry does not exist.
func put(c *ldap.Conn, base string, e *entry) error {
	if e.addFirst && !empty(e) {
		err := add(c, base, e)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			return err
		}
		return modify(c, e)
	}
	err := modify(c, e)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return err
	}
	if empty(e) {
		return nil // nothing to remove from an entry that is not there
	}
	err = add(c, base, e)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return modify(c, e) // made by someone else meanwhile
	}
	return err
}

func empty(e *entry) bool {
	for _, v := range e.replace {
		if len(v) > 0 {
			return false
		}
	}
	return true
}

func modify(c *ldap.Conn, e *entry) error {
	m := ldap.NewModifyRequest(e.dn, nil)
	for a, vs := range e.replace {
		m.Replace(a, strs(vs))
	}
	if err := c.Modify(m); err != nil {
		return fmt.Errorf("modify %s: %w", e.dn, err)
	}
	return nil
}

func add(c *ldap.Conn, base string, e *entry) error {
	if empty(e) {
		return nil
	}
	a := ldap.NewAddRequest(e.dn, nil)
	a.Attribute("objectClass", e.classes)
	for k, v := range e.naming {
		a.Attribute(k, []string{v})
	}
	for k, vs := range e.replace {
		if len(vs) > 0 {
			a.Attribute(k, strs(vs))
		}
	}
	err := c.Add(a)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		if perr := ensureParent(c, base, e.dn); perr != nil {
			return perr
		}
		err = c.Add(a)
	}
	if err != nil {
		return fmt.Errorf("add %s: %w", e.dn, err)
	}
	return nil
}

// ensureParent creates the missing ancestors of dn below base.
func ensureParent(c *ldap.Conn, base, dn string) error {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) < 2 {
		return recordError{fmt.Errorf("parent of %s: %v", dn, err)}
	}
	parent := &ldap.DN{RDNs: d.RDNs[1:]}
	b, err := ldap.ParseDN(base)
	if err != nil {
		return fmt.Errorf("base DN %s: %w", base, err)
	}
	if parent.EqualFold(b) || len(parent.RDNs) <= len(b.RDNs) {
		return fmt.Errorf("base DN %s does not exist on the target", base)
	}
	rdn := parent.RDNs[0].Attributes[0]
	classes, ok := parentClasses[strings.ToLower(rdn.Type)]
	if !ok {
		return recordError{fmt.Errorf("cannot create parent %s: no object class known for %s=", parent, rdn.Type)}
	}
	a := ldap.NewAddRequest(parent.String(), nil)
	a.Attribute("objectClass", classes)
	a.Attribute(rdn.Type, []string{rdn.Value})
	err = c.Add(a)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		if err := ensureParent(c, base, parent.String()); err != nil {
			return err
		}
		err = c.Add(a)
	}
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return fmt.Errorf("creating parent %s: %w", parent, err)
	}
	return nil
}

func strs(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// isConnErr says the connection is gone (reconnect), not that the target
// refused one operation.
func isConnErr(err error) bool {
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == ldap.ErrorNetwork || le.ResultCode == ldap.LDAPResultUnavailable ||
			le.ResultCode == ldap.LDAPResultBusy || le.ResultCode == ldap.LDAPResultServerDown
	}
	return true
}
