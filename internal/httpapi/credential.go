package httpapi

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"regexp"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// IDPattern is what an ID chosen by an operator (an organisation, a staff
// member, a certificate administrator) must match.
var IDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// MaxNameLen bounds a display name.
const MaxNameLen = 256

// CredentialRequest asks for an API credential: a certificate of the
// cert-admin profile for a staff member (admin) or an organisation's
// certificate administrator (ra).
type CredentialRequest struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Role  string `json:"role,omitempty"`
	// CSR is the holder's PEM certificate request: their key never leaves them.
	CSR string `json:"csr"`
}

// Credential is the answer: the certificate and the CA's, in PEM.
type Credential struct {
	ID          string `json:"id"`
	Org         string `json:"org,omitempty"`
	Role        string `json:"role,omitempty"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// CredentialAuthority is what issuing a credential needs of the CA.
type CredentialAuthority interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error)
	Issuers() []*ca.Issuer
}

// IssueCredential checks cr and issues its certificate with subject. The
// caller stores the holder; if that fails it must revoke the certificate,
// so no valid certificate authenticates nobody.
func IssueCredential(ctx context.Context, a CredentialAuthority, cr *CredentialRequest, subject pkix.Name) (*store.Cert, error) {
	if !IDPattern.MatchString(cr.ID) {
		return nil, BadRequest("id %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", cr.ID)
	}
	if cr.Name == "" || len(cr.Name) > MaxNameLen {
		return nil, BadRequest("name is required (at most %d bytes)", MaxNameLen)
	}
	if cr.CSR == "" {
		return nil, BadRequest("csr is required")
	}
	b, _ := pem.Decode([]byte(cr.CSR))
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, BadRequest("csr is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := ca.ParseCSR(b.Bytes)
	if err != nil {
		return nil, BadRequest("csr: %v", err)
	}
	ir := ca.IssueRequest{CSR: csr, Profile: ca.ProfileCertAdmin, Subject: &subject}
	if cr.Email != "" {
		ir.EmailAddresses = []string{cr.Email}
	}
	return a.Issue(ctx, ir)
}

// NewCredential is the answer for cert, issued by the CA named in it.
func NewCredential(a CredentialAuthority, id, org, role string, c *store.Cert) Credential {
	out := Credential{ID: id, Org: org, Role: role, Serial: c.SerialHex(),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))}
	if iss := IssuerCert(a.Issuers(), c.Issuer); iss != nil {
		out.CA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Raw}))
	}
	return out
}

// IssuerCert returns the certificate of the issuer called name, or nil.
func IssuerCert(issuers []*ca.Issuer, name string) *x509.Certificate {
	for _, iss := range issuers {
		if iss.Name == name {
			return iss.Cert
		}
	}
	return nil
}
