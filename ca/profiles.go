package ca

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"sort"
	"time"
)

// Profile is a certificate template: what a certificate of this kind may be
// used for and how long it lives.
type Profile struct {
	Name        string
	Description string
	Validity    time.Duration
	KeyUsage    x509.KeyUsage
	// KeyUsageRSA replaces KeyUsage for RSA keys where they differ (key
	// encipherment exists only for RSA; EC keys use key agreement).
	KeyUsageRSA x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// RequireSAN demands at least one DNS name or IP (server TLS).
	RequireSAN bool
	// OCSPNoCheck adds id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
	OCSPNoCheck bool
}

// Profile names.
const (
	ProfilePersonalSigning    = "personal-signing"
	ProfilePersonalEncryption = "personal-encryption"
	ProfileOrganization       = "organization"
	ProfileServerTLS          = "server-tls"
	ProfileOCSPSigning        = "ocsp-signing"
	ProfileCertAdmin          = "cert-admin"
)

const year = 365 * 24 * time.Hour

var profiles = map[string]*Profile{
	ProfilePersonalSigning: {
		Name:        ProfilePersonalSigning,
		Description: "a person's signing and authentication certificate",
		Validity:    2 * year,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
	},
	ProfilePersonalEncryption: {
		Name:        ProfilePersonalEncryption,
		Description: "a person's encryption certificate (its key may be escrowed)",
		Validity:    2 * year,
		KeyUsage:    x509.KeyUsageKeyAgreement,
		// keyEncipherment alone: RFC 5280 §4.2.1.12 pairs emailProtection
		// with it, and zlint flags dataEncipherment beside it.
		KeyUsageRSA: x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	},
	ProfileOrganization: {
		Name:        ProfileOrganization,
		Description: "an organisation's signing certificate (documents, seals)",
		Validity:    2 * year,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
	},
	ProfileServerTLS: {
		Name:        ProfileServerTLS,
		Description: "a server's TLS certificate",
		Validity:    397 * 24 * time.Hour,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		KeyUsageRSA: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		RequireSAN:  true,
	},
	ProfileOCSPSigning: {
		Name:        ProfileOCSPSigning,
		Description: "the CA's delegated OCSP responder",
		Validity:    90 * 24 * time.Hour,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		OCSPNoCheck: true,
	},
	ProfileCertAdmin: {
		Name:        ProfileCertAdmin,
		Description: "a subscriber organisation's certificate administrator or a CA staff member (API client certificate, signs applications)",
		Validity:    2 * year,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
	},
}

// LookupProfile returns the named profile.
func LookupProfile(name string) (*Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return nil, fmt.Errorf("unknown profile %q (known: %v)", name, ProfileNames())
	}
	return p, nil
}

// ProfileNames lists the profiles in name order.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// oidOCSPNoCheck is id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2.1; its value is NULL.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
