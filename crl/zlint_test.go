package crl

import (
	"context"
	"crypto/x509/pkix"
	"sort"
	"testing"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
)

// excludedLints are the zlint lints this private PKI does not follow, and
// why. Every one is a rule of the CA/Browser Forum Baseline Requirements or
// a browser root program for publicly trusted TLS certificates; certcenter's
// CAs are not in a browser root store, and the service specification asks
// for things those rules forbid (delta CRLs, certificateHold). Every other
// lint (RFC 5280, RFC 6960, community, ETSI, the BR lints that we meet) must
// pass with no warning. Keep this list and the one in doc.go the same.
var excludedLints = map[string]string{
	// CRLs
	"e_cab_crl_has_valid_reason_code": "BR 7.2.2 allows only reasons 1,3,4,5,9; RFC 5280 and the RA also allow certificateHold (6), cACompromise (2), aACompromise (10) and unspecified",
	"e_crl_extensions_validity":       "BR 7.2.2 does not recommend any CRL extension beyond number, AKI and IDP; RFC 5280 delta CRLs need the delta CRL indicator",
	// certificates
	"e_ocsp_cert_cdp_forbidden":                               "BR 7.1.2.8: ca/issue.go puts CRL distribution points in every profile, the delegated OCSP responder's too (harmless under RFC 5280)",
	"e_crl_distrib_points_not_http":                           "BR 7.1.2.11.2: the CRL distribution points carry an ldap URL beside the http one, as the specification requires",
	"e_server_cert_valid_time_longer_than_200_days":           "BR 6.3.2 (from 2026-03-15): the server-tls profile is 397 days",
	"w_server_cert_valid_time_longer_than_199_days":           "BR 6.3.2, same as above",
	"w_tls_server_cert_valid_time_longer_than_397_days":       "Apple root program: 397 days is the profile's validity, the lint warns at the limit",
	"e_sub_cert_cert_policy_empty":                            "BR 7.1.2.7.9: no BR policy OID in a private PKI",
	"e_sub_cert_certificate_policies_missing":                 "BR 7.1.2.7.9, same as above",
	"e_sub_cert_country_name_must_appear":                     "BR 7.1.4.2: the subject is the RA's decision",
	"e_sub_cert_locality_name_must_appear":                    "BR 7.1.4.2, same as above",
	"e_sub_cert_province_must_appear":                         "BR 7.1.4.2, same as above",
	"w_ext_subject_key_identifier_not_recommended_subscriber": "BR 7.1.2.7.6: RFC 5280 recommends the SKI, relying parties in the directory use it",
	"w_sub_cert_aia_contains_internal_names":                  "BR 7.1.2.7.7: the tests' public URL is 127.0.0.1; a deployment's public_url decides",
	"w_subject_common_name_included":                          "BR 7.1.4.3: the RA puts the holder's name in the CN",
}

func lintRegistry(t *testing.T) lint.Registry {
	t.Helper()
	names := make([]string, 0, len(excludedLints))
	for n := range excludedLints {
		names = append(names, n)
	}
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeNames: names})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func lintFailures(rs *zlint.ResultSet) []string {
	var bad []string
	for name, r := range rs.Results {
		if r.Status == lint.Warn || r.Status == lint.Error || r.Status == lint.Fatal {
			bad = append(bad, name+" "+r.Status.String()+": "+r.Details)
		}
	}
	sort.Strings(bad)
	return bad
}

func TestZlintCRLs(t *testing.T) {
	reg := lintRegistry(t)
	for _, tc := range []struct {
		name   string
		shards int
		alg    signer.Algorithm
	}{
		{"ok/one-crl-ecdsa", 1, signer.ECDSAP256},
		{"ok/shards-rsa", 3, signer.RSA2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{shards: tc.shards, alg: tc.alg})
			ctx := context.Background()
			if err := e.b.Full(ctx, "demo"); err != nil { // empty CRLs first
				t.Fatal(err)
			}
			lintAll(t, e, reg)
			reasons := []ca.Reason{0, 1, 2, 3, 4, 5, 6, 9, 10}
			certs := e.issue(len(reasons) + 1)
			for i, r := range reasons[:4] {
				e.revoke(certs[i], r)
			}
			if err := e.b.Full(ctx, "demo"); err != nil {
				t.Fatal(err)
			}
			for i, r := range reasons[4:] {
				e.revoke(certs[4+i], r)
			}
			if err := e.b.Delta(ctx, "demo"); err != nil {
				t.Fatal(err)
			}
			lintAll(t, e, reg)
		})
	}
}

func lintAll(t *testing.T, e *env, reg lint.Registry) {
	t.Helper()
	files := append(e.b.fullFiles("demo"), e.b.deltaFiles("demo")...)
	for _, f := range files {
		rl, err := zx509.ParseRevocationList(e.blob(f))
		if err != nil {
			t.Fatalf("zcrypto parsing %s: %v", f, err)
		}
		for _, fail := range lintFailures(zlint.LintRevocationListEx(rl, reg)) {
			t.Errorf("%s: %s", f, fail)
		}
	}
}

func TestZlintProfiles(t *testing.T) {
	reg := lintRegistry(t)
	for _, shards := range []int{1, 4} {
		e := newEnv(t, envOpts{shards: shards})
		zc, err := zx509.ParseCertificate(e.iss.Cert.Raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, fail := range lintFailures(zlint.LintCertificateEx(zc, reg)) {
			t.Errorf("root CA: %s", fail)
		}
		for _, p := range ca.ProfileNames() {
			for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
				t.Run(p+"/"+string(alg), func(t *testing.T) {
					key, err := signer.GenerateKey(alg)
					if err != nil {
						t.Fatal(err)
					}
					req := ca.IssueRequest{Profile: p, PublicKey: key.Public(),
						Subject: &pkix.Name{CommonName: "host.example.org", Organization: []string{"certcenter"}, Country: []string{"CN"}}}
					if p == ca.ProfileServerTLS {
						req.DNSNames = []string{"host.example.org"}
					}
					c, err := e.ca.Issue(context.Background(), req)
					if err != nil {
						t.Fatal(err)
					}
					zc, err := zx509.ParseCertificate(c.DER)
					if err != nil {
						t.Fatal(err)
					}
					for _, fail := range lintFailures(zlint.LintCertificateEx(zc, reg)) {
						t.Errorf("%s", fail)
					}
				})
			}
		}
	}
}
