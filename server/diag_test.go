package server

import (
	"context"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// diagIssue issues a personal certificate to a new subscriber of org and
// records it as the organisation's, as the RA does.
func diagIssue(t *testing.T, s *Server, org, cn string) *store.Cert {
	t.Helper()
	ctx := context.Background()
	st := s.c.core.store
	err := st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Org(org); err != nil {
			if err := tx.InsertOrg(&store.Org{ID: org, Name: org, CreatedAt: time.Now()}); err != nil {
				return err
			}
		}
		return tx.PutSubscriber(&store.Subscriber{ID: "sub-" + cn, CommonName: cn, Organization: "Hospital", UID: cn, CreatedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.c.core.ca.Issue(ctx, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: cn, Organization: []string{"Hospital"}}, SubscriberID: "sub-" + cn})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutOrgCert(org, c.Serial) }); err != nil {
		t.Fatal(err)
	}
	return c
}

func diagnose(t *testing.T, c *http.Client, api, serial string) *admin.CertDiagnosis {
	t.Helper()
	code, body := get(t, c, api+"/api/v1/diagnostics/certificates/"+serial)
	if code != 200 {
		t.Fatalf("diagnosis of %s = %d %s", serial, code, body)
	}
	var d admin.CertDiagnosis
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("diagnosis of %s: %v: %s", serial, err, body)
	}
	return &d
}

func codes(ps []admin.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Code)
	}
	return out
}

// The diagnostics see a certificate where a relying party does, with the
// real responder, CRL builder and directory of a running server: a good one
// is good everywhere, a revoked one revoked in OCSP and, after the rebuild,
// on the full and delta CRLs and gone from the directory; an old OCSP
// response written back into the store is a problem.
func TestDiagnostics(t *testing.T) {
	cfg := testConfig(t)
	cfg.LDAP.Addr = "127.0.0.1:0"
	cfg.OCSP.CacheEntries = 0 // so that the response written into the store is the one served
	cfg.CRL.DeltaDelay = config.Duration(100 * time.Millisecond)
	s := startTest(t, cfg)
	waitReady(t, "http://"+s.Addr("http"))
	api := "https://" + s.Addr("api")
	adm := adminClient(t, cfg.DataDir)
	ctx := context.Background()

	good := diagIssue(t, s, "hosp-1", "alice")
	revoked := diagIssue(t, s, "hosp-1", "bob")
	tampered := diagIssue(t, s, "hosp-1", "carol")

	t.Run("ok/good everywhere", func(t *testing.T) {
		d := diagnose(t, adm, api, good.SerialHex())
		if len(d.Problems) != 0 {
			t.Errorf("problems: %+v", d.Problems)
		}
		if d.Certificate.Status != "valid" || d.Certificate.Org != "hosp-1" || d.Certificate.SubscriberID != "sub-alice" {
			t.Errorf("certificate: %+v", d.Certificate)
		}
		if o := d.OCSP; o == nil || o.Status != "good" || o.Source != "store" || o.ResponderSerial == "" || o.ResponderSerial != o.CurrentResponderSerial ||
			!o.ThisUpdate.Before(o.NextUpdate) || o.ProducedAt.IsZero() {
			t.Errorf("ocsp: %+v", d.OCSP)
		}
		if len(d.CRLs) != 2 || d.CRLs[0].Delta || !d.CRLs[1].Delta || d.CRLs[0].Number == 0 || d.CRLs[1].BaseNumber != d.CRLs[0].Number {
			t.Errorf("crls: %+v", d.CRLs)
		}
		for _, c := range d.CRLs {
			if c.Listed {
				t.Errorf("%s lists a valid certificate", c.File)
			}
		}
		if dir := d.Directory; dir == nil || !dir.Published || !dir.Expected || !strings.HasPrefix(dir.DN, "cn=alice,") {
			t.Errorf("directory: %+v", d.Directory)
		}
		if d.Targets == nil || len(d.Targets) != 0 || d.TargetsNote == "" {
			t.Errorf("targets: %+v %q", d.Targets, d.TargetsNote)
		}
	})

	t.Run("ok/revoked: OCSP at once, the CRLs after the rebuild", func(t *testing.T) {
		if code, body := post(t, adm, api+"/api/v1/certs/"+revoked.SerialHex()+"/revoke", `{"reason":"keyCompromise"}`); code != 200 {
			t.Fatalf("revoke = %d %s", code, body)
		}
		d := diagnose(t, adm, api, revoked.SerialHex())
		if o := d.OCSP; o == nil || o.Status != "revoked" || o.Reason != "keyCompromise" {
			t.Errorf("ocsp right after the revocation: %+v", d.OCSP)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			d = diagnose(t, adm, api, revoked.SerialHex())
			full, delta := false, false
			for _, c := range d.CRLs {
				if c.Delta {
					delta = delta || c.Listed
				} else {
					full = full || c.Listed
				}
			}
			if full && delta && len(d.Problems) == 0 && d.Directory != nil && !d.Directory.Published {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: crls %+v, directory %+v, problems %+v", d.CRLs, d.Directory, d.Problems)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if d.Directory.Expected || d.Directory.Why == "" {
			t.Errorf("directory of a revoked certificate (include_revoked off): %+v", d.Directory)
		}
	})

	t.Run("fail/stale OCSP response in the store", func(t *testing.T) {
		var old []byte
		key := tampered.SerialHex()
		if err := s.c.core.store.View(ctx, func(tx *store.Tx) error {
			b, err := tx.Blob("ocsp", key)
			old = append([]byte(nil), b...)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.c.core.ca.Revoke(ctx, tampered.Serial, ca.ReasonSuperseded); err != nil {
			t.Fatal(err)
		}
		if err := s.c.core.store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob("ocsp", key, old) }); err != nil {
			t.Fatal(err)
		}
		d := diagnose(t, adm, api, key)
		got := strings.Join(codes(d.Problems), " ")
		if d.OCSP == nil || d.OCSP.Status != "good" || !strings.Contains(got, "ocsp_status") {
			t.Errorf("ocsp %+v, problems %+v", d.OCSP, d.Problems)
		}
	})

	t.Run("ok/organisation", func(t *testing.T) {
		code, body := get(t, adm, api+"/api/v1/diagnostics/organisations/hosp-1")
		if code != 200 {
			t.Fatalf("org = %d %s", code, body)
		}
		var o admin.OrgDiagnosis
		json.Unmarshal([]byte(body), &o)
		if o.Counts.Certificates != 3 || o.Counts.Revoked != 2 || o.Counts.WithProblems != 1 || o.Counts.Problems["ocsp_status"] != 1 ||
			len(o.Items) != 1 || o.Items[0].Certificate.Serial != tampered.SerialHex() || o.Next != "" {
			t.Errorf("org: %s", body)
		}
		code, body = get(t, adm, api+"/api/v1/diagnostics/organisations/hosp-1?limit=1&after="+tampered.SerialHex())
		if code != 200 || !strings.Contains(body, `"items":[]`) {
			t.Errorf("org after the only problem = %d %s", code, body)
		}
	})

	t.Run("ok/targets", func(t *testing.T) {
		code, body := get(t, adm, api+"/api/v1/diagnostics/targets")
		if code != 200 || !strings.Contains(body, `"targets":[]`) || !strings.Contains(body, `"note"`) {
			t.Errorf("targets = %d %s", code, body)
		}
	})

	t.Run("fail/input and access", func(t *testing.T) {
		unknown := hex.EncodeToString([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7})
		for _, tc := range []struct {
			path string
			code int
		}{
			{"/api/v1/diagnostics/certificates/" + unknown, 404},
			{"/api/v1/diagnostics/certificates/xyz", 400},
			{"/api/v1/diagnostics/organisations/no-such-org", 404},
			{"/api/v1/diagnostics/organisations/hosp-1?limit=0", 400},
		} {
			if code, body := get(t, adm, api+tc.path); code != tc.code {
				t.Errorf("GET %s = %d %s, want %d", tc.path, code, body, tc.code)
			}
		}
		scraper, _ := enrolStaff(t, adm, api, cfg.DataDir, "scraper", "metrics")
		for _, p := range []string{"/api/v1/diagnostics/certificates/" + good.SerialHex(), "/api/v1/diagnostics/organisations/hosp-1", "/api/v1/diagnostics/targets"} {
			if code, body := get(t, scraper, api+p); code != http.StatusForbidden {
				t.Errorf("metrics role: GET %s = %d %s", p, code, body)
			}
		}
		desk, _ := enrolStaff(t, adm, api, cfg.DataDir, "desk", "service_agent")
		if code, body := get(t, desk, api+"/api/v1/diagnostics/certificates/"+good.SerialHex()); code != 200 {
			t.Errorf("service_agent: %d %s", code, body)
		}
	})
}
