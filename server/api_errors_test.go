package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
)

// enrol makes a key and a CSR, posts it to path with the bootstrap
// administrator's credential, and returns an HTTPS client holding the
// certificate the API issued.
func enrol(t *testing.T, admin *http.Client, dataDir, url, body string) *http.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "enrolled"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})))
	code, b := post(t, admin, url, strings.Replace(body, `"CSR"`, string(csrPEM), 1))
	if code != http.StatusCreated {
		t.Fatalf("enrolling at %s = %d %s", url, code, b)
	}
	var cred struct{ Certificate string }
	if err := json.Unmarshal([]byte(b), &cred); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair([]byte(cred.Certificate), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return tlsClient(t, dataDir, []tls.Certificate{kp})
}

func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIErrorStatuses: over real HTTPS with client certificates, a caller
// whose certificate authenticates them but whose role does not allow the
// route gets 403 (401 is for a missing or unusable credential), and a path
// that is no route gets a JSON 404 (405 with Allow for a route's path and
// another method).
func TestAPIErrorStatuses(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	admin := adminClient(t, cfg.DataDir)
	if code, b := post(t, admin, api+"/api/v1/ra/orgs", `{"id":"hospital","name":"Hospital"}`); code != http.StatusCreated {
		t.Fatalf("creating an organisation = %d %s", code, b)
	}
	certAdmin := enrol(t, admin, cfg.DataDir, api+"/api/v1/ra/orgs/hospital/admins", `{"id":"adm1","name":"Adm One","csr":"CSR"}`)
	agent := enrol(t, admin, cfg.DataDir, api+"/api/v1/ra/staff", `{"id":"agent1","name":"Agent One","role":"service_agent","csr":"CSR"}`)
	nobody := tlsClient(t, cfg.DataDir, nil)

	code, body := get(t, admin, api+"/api/v1/certs")
	if code != 200 {
		t.Fatalf("list = %d %s", code, body)
	}
	var list struct{ Items []struct{ Serial string } }
	json.Unmarshal([]byte(body), &list)
	if len(list.Items) == 0 {
		t.Fatalf("no certificates in %s", body)
	}
	serial := list.Items[0].Serial

	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
		want   int
		code   string
	}{
		{"ok/cert-admin on an RA route", certAdmin, "GET", "/api/v1/ra/orgs", 200, ""},
		{"fail/cert-admin lists certificates", certAdmin, "GET", "/api/v1/certs", 403, "forbidden"},
		{"fail/cert-admin reads status", certAdmin, "GET", "/api/v1/status", 403, "forbidden"},
		{"fail/cert-admin revokes", certAdmin, "POST", "/api/v1/certs/" + serial + "/revoke", 403, "forbidden"},
		{"fail/service agent revokes", agent, "POST", "/api/v1/certs/" + serial + "/revoke", 403, "forbidden"},
		{"ok/service agent reads", agent, "GET", "/api/v1/status", 200, ""},
		{"fail/no certificate on an admin route", nobody, "GET", "/api/v1/certs", 401, "unauthenticated"},
		{"fail/unknown path", admin, "GET", "/api/v1/nothing-here", 404, "not_found"},
		{"fail/unknown version", admin, "GET", "/api/v2/certs", 404, "not_found"},
		{"fail/unknown path without a certificate", nobody, "POST", "/api/tickets", 404, "not_found"},
		{"fail/known path, other method", admin, "DELETE", "/api/v1/certs", 405, "method_not_allowed"},
		{"ok/serial with its leading zeros dropped", admin, "GET", "/api/v1/certs/0x" + strings.ToUpper(strings.TrimLeft(serial, "0")), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.method == "POST" {
				rd = strings.NewReader(`{"reason":"superseded"}`)
			}
			req, _ := http.NewRequest(tc.method, api+tc.path, rd)
			resp, err := tc.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.want)
			}
			if tc.code == "" {
				return
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("%s %s body = %s, want error code %q", tc.method, tc.path, b, tc.code)
			}
			if tc.want == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	// Nothing was revoked by the refused calls.
	if code, body := get(t, admin, api+"/api/v1/certs/"+serial); code != 200 || !strings.Contains(body, `"status":"valid"`) {
		t.Errorf("after refused revocations: %d %s", code, body)
	}
}
