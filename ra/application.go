package ra

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smallstep/pkcs7"

	"github.com/certcenter/certcenter/ca"
)

// Kinds of request.
const (
	KindIssue  = "issue"
	KindRenew  = "renew"
	KindRevoke = "revoke"
	// KindLDAPAccess asks for a directory account (ldapaccess.go); it is
	// submitted as JSON by the organisation's certificate administrator,
	// not as a signed application.
	KindLDAPAccess = "ldap_access"
)

// Application is the JSON document an organisation's certificate
// administrator signs (SPEC Art. 8): one kind of business for one or more
// people of one organisation.
type Application struct {
	// Org is the organisation's ID.
	Org string `json:"org"`
	// Kind is issue (default), renew or revoke.
	Kind    string `json:"kind,omitempty"`
	Items   []Item `json:"items"`
	Comment string `json:"comment,omitempty"`
	// Leader is the approval of the organisation's leader that the
	// administrator obtained before submitting (SPEC Art. 8.2).
	Leader *Leader `json:"leader,omitempty"`
}

// Leader is a leader's approval: who and when, and optionally the scanned
// signed approval (PDF, JPEG or PNG, base64).
type Leader struct {
	Name     string `json:"name"`
	Date     string `json:"date"`
	Document string `json:"document,omitempty"`
}

// maxLeaderDocument bounds the scanned approval (decoded bytes).
const maxLeaderDocument = 512 << 10

// checkLeader checks the approval's form; whether its date is in the
// future is decided at submission. It returns the decoded document.
func (l *Leader) check() (doc []byte, docType string, err error) {
	if strings.TrimSpace(l.Name) == "" || len(l.Name) > maxFieldLen || strings.ContainsAny(l.Name, "\x00\r\n") {
		return nil, "", badApp("leader.name is required: at most %d bytes on one line", maxFieldLen)
	}
	if _, err := time.Parse(time.DateOnly, l.Date); err != nil {
		return nil, "", badApp("leader.date %q is not a YYYY-MM-DD date", l.Date)
	}
	if l.Document == "" {
		return nil, "", nil
	}
	if base64.StdEncoding.DecodedLen(len(l.Document)) > maxLeaderDocument+3 {
		return nil, "", badApp("leader.document is larger than %d bytes", maxLeaderDocument)
	}
	doc, err = base64.StdEncoding.DecodeString(l.Document)
	if err != nil {
		return nil, "", badApp("leader.document is not base64: %v", err)
	}
	if len(doc) > maxLeaderDocument {
		return nil, "", badApp("leader.document is larger than %d bytes", maxLeaderDocument)
	}
	docType = http.DetectContentType(doc)
	if i := strings.IndexByte(docType, ';'); i >= 0 {
		docType = docType[:i]
	}
	if docType != "application/pdf" && docType != "image/jpeg" && docType != "image/png" {
		return nil, "", badApp("leader.document is %s; send the scanned approval as PDF, JPEG or PNG", docType)
	}
	return doc, docType, nil
}

// Item is one person's request within an application.
type Item struct {
	// Name is the person's name, the certificate's CN (issue).
	Name     string `json:"name,omitempty"`
	Email    string `json:"email,omitempty"`
	UID      string `json:"uid,omitempty"`
	IDNumber string `json:"id_number,omitempty"`
	OrgUnit  string `json:"org_unit,omitempty"`
	// Profile is the certificate profile (issue); default personal-signing.
	Profile string `json:"profile,omitempty"`
	// CSR is a PEM certificate request (issue, renew).
	CSR string `json:"csr,omitempty"`
	// ValidDays shortens the profile's validity.
	ValidDays int `json:"valid_days,omitempty"`
	// Serial is the certificate to renew or revoke, hex.
	Serial string `json:"serial,omitempty"`
	// Cause is why to revoke: key_lost, token_damaged, info_changed,
	// documents_invalid (SPEC Art. 11), or an RFC 5280 reason name.
	Cause string `json:"cause,omitempty"`
}

// Limits on outside input.
const (
	maxItems     = 1000
	maxFieldLen  = 256
	maxValidDays = 3650
)

// errApplication marks an application the submitter must fix.
var errApplication = errors.New("bad application")

func badApp(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errApplication, fmt.Sprintf(format, a...))
}

// causes maps the specification's revocation causes to RFC 5280 reasons:
// a lost key may be in someone else's hands; a damaged token is replaced by
// a new key; changed personal or organisational information changes the
// affiliation; invalid identity documents end the certificate's purpose.
var causes = map[string]ca.Reason{
	"key_lost":          ca.ReasonKeyCompromise,
	"token_damaged":     ca.ReasonSuperseded,
	"info_changed":      ca.ReasonAffiliationChanged,
	"documents_invalid": ca.ReasonCessationOfOperation,
}

// reasonFor maps a cause (or an RFC 5280 reason name) to a reason.
func reasonFor(cause string) (ca.Reason, error) {
	if r, ok := causes[cause]; ok {
		return r, nil
	}
	r, err := ca.ParseReason(cause)
	if err != nil || r == ca.ReasonCACompromise || r == ca.ReasonAACompromise || r == ca.ReasonCertificateHold {
		return 0, badApp("revocation cause %q is not one of key_lost, token_damaged, info_changed, documents_invalid (or an RFC 5280 reason for a subscriber)", cause)
	}
	return r, nil
}

// issuableProfiles are the profiles an organisation may apply for; the CA's
// own (OCSP, administrator) are issued only by the CA.
var issuableProfiles = map[string]bool{
	ca.ProfilePersonalSigning: true, ca.ProfilePersonalEncryption: true,
	ca.ProfileOrganization: true, ca.ProfileServerTLS: true,
}

var serialRE = regexp.MustCompile(`^[0-9a-fA-F:]{1,64}$`)

// ParseApplication decodes an application strictly (unknown fields are
// errors) and checks every item, including CSR signatures and key strength.
// It returns the parsed CSRs by item index.
func ParseApplication(content []byte) (*Application, []*x509.CertificateRequest, error) {
	if !utf8.Valid(content) {
		return nil, nil, badApp("the application is not UTF-8 JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.DisallowUnknownFields()
	var app Application
	if err := dec.Decode(&app); err != nil {
		return nil, nil, badApp("invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, nil, badApp("trailing data after the JSON document")
	}
	if app.Org == "" {
		return nil, nil, badApp("org is required")
	}
	if app.Kind == "" {
		app.Kind = KindIssue
	}
	if app.Kind != KindIssue && app.Kind != KindRenew && app.Kind != KindRevoke {
		return nil, nil, badApp("kind %q is not one of issue, renew, revoke", app.Kind)
	}
	if app.Leader != nil {
		if _, _, err := app.Leader.check(); err != nil {
			return nil, nil, err
		}
	}
	if len(app.Items) == 0 || len(app.Items) > maxItems {
		return nil, nil, badApp("an application holds 1 to %d items, not %d", maxItems, len(app.Items))
	}
	csrs := make([]*x509.CertificateRequest, len(app.Items))
	for i := range app.Items {
		it := &app.Items[i]
		csr, err := checkItem(app.Kind, it)
		if err != nil {
			return nil, nil, fmt.Errorf("item %d: %w", i, err)
		}
		csrs[i] = csr
	}
	return &app, csrs, nil
}

func checkItem(kind string, it *Item) (*x509.CertificateRequest, error) {
	for name, v := range map[string]string{"name": it.Name, "email": it.Email, "uid": it.UID, "id_number": it.IDNumber, "org_unit": it.OrgUnit, "profile": it.Profile, "cause": it.Cause} {
		if len(v) > maxFieldLen {
			return nil, badApp("%s is longer than %d bytes", name, maxFieldLen)
		}
		if strings.ContainsAny(v, "\x00\r\n") {
			return nil, badApp("%s holds a control character", name)
		}
	}
	if it.Email != "" && (!strings.Contains(it.Email, "@") || strings.ContainsAny(it.Email, " <>,;")) {
		return nil, badApp("email %q is not an address", it.Email)
	}
	if it.ValidDays < 0 || it.ValidDays > maxValidDays {
		return nil, badApp("valid_days must be between 1 and %d", maxValidDays)
	}
	if (kind == KindRenew || kind == KindRevoke) && !serialRE.MatchString(it.Serial) {
		return nil, badApp("serial %q is not a hex certificate serial", it.Serial)
	}
	switch kind {
	case KindIssue:
		if strings.TrimSpace(it.Name) == "" {
			return nil, badApp("name is required")
		}
		if it.Profile == "" {
			it.Profile = ca.ProfilePersonalSigning
		}
		if !issuableProfiles[it.Profile] {
			return nil, badApp("profile %q may not be applied for (personal-signing, personal-encryption, organization, server-tls)", it.Profile)
		}
		return parsePEMCSR(it.CSR)
	case KindRenew:
		return parsePEMCSR(it.CSR)
	default:
		if _, err := reasonFor(it.Cause); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

func parsePEMCSR(s string) (*x509.CertificateRequest, error) {
	if s == "" {
		return nil, badApp("csr is required")
	}
	b, _ := pem.Decode([]byte(s))
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, badApp("csr is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := ca.ParseCSR(b.Bytes)
	if err != nil {
		return nil, badApp("%v", err)
	}
	return csr, nil
}

// Signed is a verified CMS SignedData: its content and the certificate that
// signed it. Trust in the certificate is checked separately.
type Signed struct {
	Content []byte
	Signer  *x509.Certificate
	// Chain holds the other certificates the document carried.
	Chain []*x509.Certificate
}

// ParseSigned parses a DER (or BER) CMS SignedData with encapsulated content,
// as `openssl cms -sign -nodetach -binary -outform DER` makes it, and
// verifies that its one signer's signature covers the content. It does not
// decide whether the signer is trusted.
func ParseSigned(der []byte, at time.Time) (*Signed, error) {
	if len(der) == 0 {
		return nil, badApp("empty body: send the CMS SignedData (DER) of the application")
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, badApp("not a CMS SignedData: %v", err)
	}
	if len(p7.Signers) != 1 {
		return nil, badApp("the document has %d signers; exactly one certificate administrator signs", len(p7.Signers))
	}
	if len(p7.Content) == 0 {
		return nil, badApp("the document carries no content (sign with -nodetach)")
	}
	if d := p7.Signers[0].DigestAlgorithm.Algorithm; !d.Equal(pkcs7.OIDDigestAlgorithmSHA256) && !d.Equal(pkcs7.OIDDigestAlgorithmSHA384) && !d.Equal(pkcs7.OIDDigestAlgorithmSHA512) {
		return nil, badApp("digest algorithm %v is not accepted (use SHA-256, SHA-384 or SHA-512)", d)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, badApp("the document does not carry the signer's certificate")
	}
	// Chain trust is ours to check (against our CA and the store); the
	// library checks the signature, the message digest and the signing time.
	if err := p7.VerifyWithChainAtTime(nil, at); err != nil {
		return nil, badApp("signature does not verify: %v", err)
	}
	s := &Signed{Content: p7.Content, Signer: signer}
	for _, c := range p7.Certificates {
		if c != signer {
			s.Chain = append(s.Chain, c)
		}
	}
	return s, nil
}
