package ra_test

import (
	"encoding/pem"
	"io"
	"strings"
	"testing"
)

// TestRemindersAndRenewal: a certificate near expiry is reminded once per
// window by e-mail (a real SMTP session) and webhook; its renewal, once
// confirmed, is downloadable at once through a one-time link.
func TestRemindersAndRenewal(t *testing.T) {
	w := newWorld(t, nil)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "clinic", "name": "Clinic"}, nil)
	adm := w.enrol("/api/v1/ra/orgs/clinic/admins", "cadm", "", "cadm@clinic.test")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer", "")

	var sub submitResp
	w.must(adm.http, 201, "POST", "/api/v1/applications", w.sign(adm, map[string]any{"org": "clinic", "items": []map[string]any{
		{"name": "Dr Near Expiry", "email": "near@clinic.test", "valid_days": 20, "csr": csrPEM(t, newKey(t), "a")},
		{"name": "Dr Very Near", "email": "very@clinic.test", "valid_days": 3, "csr": csrPEM(t, newKey(t), "b")},
	}}), &sub)
	var v reqView
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+sub.Requests[0].ID+"/approve", nil, &v)
	near := v.Serial
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+sub.Requests[1].ID+"/approve", nil, &v)
	veryNear := v.Serial

	var res struct{ Checked, Sent, Failed int }
	w.must(w.admin, 200, "POST", "/api/v1/ra/reminders/run", nil, &res)
	if res.Sent != 2 || res.Failed != 0 {
		t.Fatalf("first reminder run = %+v; want 2 sent", res)
	}
	for i := 0; i < 2; i++ { // again: nothing new
		w.must(w.admin, 200, "POST", "/api/v1/ra/reminders/run", nil, &res)
		if res.Sent != 0 {
			t.Fatalf("reminder run %d sent %d again", i+2, res.Sent)
		}
	}
	mails := w.mail.all()
	if len(mails) != 2 {
		t.Fatalf("SMTP relay got %d messages, want 2: %+v", len(mails), mails)
	}
	for _, m := range mails {
		if m.from != "ca@certcenter.test" || len(m.to) != 2 || m.to[1] != "cadm@clinic.test" || !strings.Contains(m.data, "Subject: ") {
			t.Errorf("reminder mail %+v: want subscriber and administrator", m)
		}
	}
	hooks := w.hooks.of("renewal_reminder")
	if len(hooks) != 2 {
		t.Fatalf("webhook got %d reminders, want 2", len(hooks))
	}
	windows := map[string]float64{}
	for _, h := range hooks {
		windows[h["serial"].(string)] = h["window_days"].(float64)
	}
	if windows[near] != 30 || windows[veryNear] != 7 {
		t.Errorf("reminder windows %v; want 30 days for %s and 7 for %s", windows, near, veryNear)
	}

	// Renewal: CA confirms; the new certificate is downloadable at once.
	w.must(adm.http, 201, "POST", "/api/v1/applications", w.sign(adm, map[string]any{"org": "clinic", "kind": "renew", "items": []map[string]any{
		{"serial": near, "csr": csrPEM(t, newKey(t), "renewed")}}}), &sub)
	rn := sub.Requests[0]
	if rn.State != "ca_review" {
		t.Fatalf("renewal state %s", rn.State)
	}
	w.must(adm.http, 409, "POST", "/api/v1/applications", w.sign(adm, map[string]any{"org": "clinic", "kind": "renew", "items": []map[string]any{
		{"serial": near, "csr": csrPEM(t, newKey(t), "again")}}}), nil)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+rn.ID+"/approve", nil, &v)
	if v.State != "issued" || v.Serial == "" || v.Serial == near {
		t.Fatalf("renewal after confirmation = %+v", v)
	}
	renewed := w.hooks.of("renewed")
	if len(renewed) != 1 {
		t.Fatalf("webhook got %d renewal notifications, want 1", len(renewed))
	}
	link := renewed[0]["download_url"].(string)
	path := link[strings.Index(link, "/api/"):]
	anon := w.client("", "")
	resp, err := anon.Get(w.base + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if b, _ := pem.Decode(body); resp.StatusCode != 200 || b == nil {
		t.Fatalf("one-time download = %d %s", resp.StatusCode, body)
	}
	if st, _ := w.call(anon, "GET", path, nil, nil); st != 404 {
		t.Fatalf("second use of the one-time link = %d, want 404", st)
	}
	if len(w.mail.all()) != 3 || !strings.Contains(w.mail.all()[2].data, "/api/v1/downloads/") {
		t.Errorf("renewal e-mail with the link missing: %+v", w.mail.all())
	}
}
