package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestDeskWired: the server mounts the desk for its roles, counts tickets
// in /metrics, and answers a replacement confirmation 501 until package
// token's replacement kind is wired.
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
	if code, resp := post(t, eng, api+"/api/v1/tickets/"+tk.ID+"/replacement", `{"token":"K1","reason":"broken"}`); code != http.StatusNotImplemented || !strings.Contains(resp, "package token") {
		t.Errorf("replacement = %d %s", code, resp)
	}
	if code, resp := get(t, agent, api+"/api/v1/tickets/"+tk.ID+"/articles"); code != http.StatusNotImplemented {
		t.Errorf("articles = %d %s", code, resp)
	}
	code, metrics := get(t, agent, api+"/metrics")
	if code != 200 || !strings.Contains(metrics, `certcenter_desk_tickets_created_total{channel="hotline",class="general"} 1`) {
		t.Errorf("metrics = %d, lacks the desk's ticket counter", code)
	}
}
