package httpapi

import (
	"encoding/hex"
	"encoding/pem"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// CertView is the JSON form of a certificate, for the API's answers and the
// CLI's printing alike.
type CertView struct {
	Serial     string `json:"serial"`
	Issuer     string `json:"issuer"`
	Subject    string `json:"subject"`
	CommonName string `json:"cn"`
	Profile    string `json:"profile"`
	// Org is the organisation the RA issued it to.
	Org          string `json:"org,omitempty"`
	SubscriberID string `json:"subscriber,omitempty"`
	// Status is valid or revoked, and expired where the view was made with
	// a clock (CertViewOptions.Now).
	Status    string    `json:"status"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	// SupersededBy is the certificate that renewed this one.
	SupersededBy string `json:"superseded_by,omitempty"`
	PEM          string `json:"pem,omitempty"`
}

// CertViewOptions add to a view what the certificate record does not hold.
type CertViewOptions struct {
	// Now, if set, reports an unrevoked certificate past its notAfter as
	// expired.
	Now time.Time
	// Org is the owning organisation; SupersededBy the renewal's serial.
	Org          string
	SupersededBy []byte
	// PEM includes the certificate.
	PEM bool
}

// ViewCert returns the view of c.
func ViewCert(c *store.Cert, o CertViewOptions) CertView {
	v := CertView{
		Serial: c.SerialHex(), Issuer: c.Issuer, Subject: c.Subject, CommonName: c.CommonName,
		Profile: c.Profile, Org: o.Org, SubscriberID: c.SubscriberID, Status: CertStatus(c, o.Now),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter,
	}
	if c.Status == store.StatusRevoked {
		v.RevokedAt = c.RevokedAt
		v.Reason = ca.Reason(c.Reason).String()
	}
	if o.SupersededBy != nil {
		v.SupersededBy = hex.EncodeToString(o.SupersededBy)
	}
	if o.PEM {
		v.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))
	}
	return v
}

// CertStatus is c's status as the API names it: revoked, else expired if
// now is set and past notAfter, else the store's status.
func CertStatus(c *store.Cert, now time.Time) string {
	switch {
	case c.Status == store.StatusRevoked:
		return "revoked"
	case !now.IsZero() && now.After(c.NotAfter):
		return "expired"
	}
	return c.Status.String()
}
