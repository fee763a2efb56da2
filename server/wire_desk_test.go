package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
)

// TestDeskWired: the server mounts the desk for its roles, counts tickets
// in /metrics, and hands a replacement confirmation to the RA, which
// refuses a token that is not in the inventory.
func TestDeskWired(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	agent := staffClient(t, s, cfg.DataDir, "sam", "service_agent")
	eng := staffClient(t, s, cfg.DataDir, "erin", "engineer")
	auditor := staffClient(t, s, cfg.DataDir, "aud", "auditor")

	body := `{"channel":"hotline","category":"token_use/usbkey_replacement","subject":"broken key","requester":{"kind":"person","name":"Zhang San","phone":"1"}}`
	code, resp := post(t, agent, api+"/api/v1/tickets", body)
	if code != http.StatusCreated {
		t.Fatalf("create = %d %s", code, resp)
	}
	var tk struct {
		ID  string `json:"id"`
		SLA struct {
			Calendar string `json:"calendar"`
		} `json:"sla"`
	}
	if err := json.Unmarshal([]byte(resp), &tk); err != nil || tk.ID == "" || tk.SLA.Calendar != "5x8" {
		t.Fatalf("ticket %s: %v", resp, err)
	}
	if code, resp := get(t, auditor, api+"/api/v1/tickets/"+tk.ID); code != http.StatusForbidden {
		t.Errorf("auditor reads a ticket: %d %s", code, resp)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Zhang San"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	repl, _ := json.Marshal(map[string]string{"token": "K1", "new_token": "K2", "cause": "damaged", "reason": "broken",
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if code, resp := post(t, eng, api+"/api/v1/tickets/"+tk.ID+"/replacement", string(repl)); code != http.StatusBadRequest || !strings.Contains(resp, "inventory") {
		t.Errorf("replacement of a token not in the inventory = %d %s, want 400 from the RA", code, resp)
	}
	// The knowledge base searched from the ticket: the agent finds the
	// agent-level article by a two-character word of the ticket's subject
	// language, and not the engineers' one.
	tc := staffClient(t, s, cfg.DataDir, "tess", "technical_centre")
	for _, a := range []string{
		`{"lang":"zh","title":"介质损坏的更换流程","body":"介质损坏时，由支持工程师确认后办理更换。","category":"token_use","level":"agent"}`,
		`{"lang":"zh","title":"介质固件调试","body":"介质损坏时读取固件日志。","category":"token_use","level":"engineer"}`,
	} {
		if code, resp := post(t, tc, api+"/api/v1/kb/articles", a); code != http.StatusCreated {
			t.Fatalf("kb article = %d %s", code, resp)
		}
	}
	for who, c := range map[string]*http.Client{"agent": agent, "engineer": eng} {
		code, resp := get(t, c, api+"/api/v1/tickets/"+tk.ID+"/articles?q=%E6%8D%9F%E5%9D%8F")
		var page struct {
			Items []struct {
				Title string `json:"title"`
			} `json:"items"`
		}
		_ = json.Unmarshal([]byte(resp), &page)
		hits := page.Items
		want := map[string]int{"agent": 1, "engineer": 2}[who]
		if code != http.StatusOK || len(hits) != want {
			t.Errorf("%s searches the knowledge base from a ticket: %d %s, want %d hits", who, code, resp, want)
		}
	}
	code, metrics := get(t, agent, api+"/metrics")
	if code != 200 || !strings.Contains(metrics, `certcenter_desk_tickets_created_total{channel="hotline",class="general"} 1`) {
		t.Errorf("metrics = %d, lacks the desk's ticket counter", code)
	}
}
