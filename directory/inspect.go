package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/certcenter/certcenter/store"
)

// Publication is where one certificate stands in the directory, as
// diagnostics show it.
type Publication struct {
	// DN is the entry of the certificate's subscriber; "" when it has none
	// (a certificate issued to no subscriber, such as a staff credential).
	DN string
	// Published says whether the entry's userCertificate;binary holds the
	// certificate now (what a search returns, from the entry cache).
	Published bool
	// Expected says whether it should, by ldap.include_revoked,
	// ldap.include_expired and ldap.hidden_attributes; Why says why not.
	Expected bool
	Why      string
}

// Publication reports c's subscriber entry and whether it carries c.
// Expected is decided from c's record and the configuration, independently
// of the entry, so a stale cached entry shows as a difference.
func (d *Directory) Publication(ctx context.Context, c *store.Cert) (Publication, error) {
	var p Publication
	cfg := d.opts.Config
	now := d.now()
	switch {
	case c.SubscriberID == "":
		p.Why = "the certificate has no subscriber"
	case d.hidden[attrByName["usercertificate"]]:
		p.Why = "ldap.hidden_attributes hides userCertificate"
	case c.Status == store.StatusRevoked && !cfg.IncludeRevoked:
		p.Why = "revoked, and ldap.include_revoked is off"
	case !now.Before(c.NotAfter) && !cfg.IncludeExpired:
		p.Why = "expired, and ldap.include_expired is off"
	default:
		p.Expected = true
	}
	if c.SubscriberID == "" {
		return p, nil
	}
	st := d.static.Load()
	if st == nil {
		return p, errors.New("the directory is not started")
	}
	gen := d.gen.Load()
	err := d.st.View(ctx, func(tx *store.Tx) error {
		e, err := d.subscriberEntry(tx, st, c.SubscriberID, gen)
		if err != nil || e == nil {
			return err
		}
		p.DN = e.DN
		if a := e.attr(attrByName["usercertificate"]); a != nil {
			for v := range a.values() {
				if bytes.Equal(v, c.DER) {
					p.Published = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("reading the directory entry of subscriber %s: %w", c.SubscriberID, err)
	}
	return p, nil
}
