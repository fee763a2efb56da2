package ra

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

type notificationList struct {
	Items []struct {
		ID, Event, Org, Serial, Status, Body string
		LastError                            string `json:"last_error"`
		Attempts                             int
		Channels                             map[string]string
	}
}

func (e *execEnv) notifications(c *caller, query string) notificationList {
	e.t.Helper()
	req := httptest.NewRequest("GET", "/api/v1/notifications?"+query, nil)
	req = req.WithContext(httpapi.WithPrincipal(req.Context(), c))
	rec := httptest.NewRecorder()
	if err := e.r.listNotifications(rec, req); err != nil {
		e.t.Fatal(err)
	}
	var out notificationList
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return out
}

// TestNotificationOutbox: with no mail or webhook configured (the default),
// reminders and renewal links are kept in a durable outbox that the API
// lists, not dropped; the start warns that no channel is set.
func TestNotificationOutbox(t *testing.T) {
	var logs bytes.Buffer
	e := newExecEnv(t, nil, nil, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	ctx := context.Background()
	rq := e.submit(e.item("Near Expiry", 20), nil)
	if _, err := e.approve(ctx, rq.ID); err != nil {
		t.Fatal(err)
	}
	serial := hex.EncodeToString(e.read(rq.ID).Serial)
	res, err := e.r.RunReminders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 1 {
		t.Fatalf("reminder run = %+v; want the reminder queued in the outbox", res)
	}
	if res, _ := e.r.RunReminders(ctx); res.Queued != 0 {
		t.Fatalf("second reminder run queued %d again", res.Queued)
	}
	rn, err := e.submitKind(e.admin, KindRenew, map[string]any{"serial": serial, "csr": testCSR(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.approve(ctx, rn.ID); err != nil {
		t.Fatal(err)
	}
	l := e.notifications(e.officer, "")
	if len(l.Items) != 2 || l.Items[0].Event != "renewal_reminder" || l.Items[0].Serial != serial || l.Items[1].Event != "renewed" {
		t.Fatalf("outbox = %+v; want the reminder and the renewal", l)
	}
	for _, n := range l.Items {
		if n.Status != "held" || n.Org != "o" {
			t.Errorf("notification %+v: want held for organisation o (no channel)", n)
		}
	}
	if !strings.Contains(l.Items[1].Body, "/api/v1/downloads/") {
		t.Errorf("the renewal notification %q does not carry the download link", l.Items[1].Body)
	}
	if got := e.notifications(e.officer, "event=renewed"); len(got.Items) != 1 {
		t.Errorf("filter event=renewed gave %d", len(got.Items))
	}
	other := &caller{Admin: &store.CertAdmin{ID: "x", OrgID: "other"}}
	if got := e.notifications(other, ""); len(got.Items) != 0 {
		t.Errorf("another organisation's administrator sees %d notifications", len(got.Items))
	}
	if got := e.notifications(e.admin, ""); len(got.Items) != 2 {
		t.Errorf("the organisation's administrator sees %d notifications, want 2", len(got.Items))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = e.r.Run(cctx)
	if !strings.Contains(logs.String(), "no notification channel") {
		t.Errorf("start without a channel did not warn; log:\n%s", logs.String())
	}
}

// TestNotificationRetried: a webhook that fails keeps the notification
// pending with the error; it is delivered once the receiver is back, and
// given up after ra.max_attempts.
func TestNotificationRetried(t *testing.T) {
	var up atomic.Bool
	var got atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
	}))
	defer hs.Close()
	e := newExecEnv(t, nil, nil, func(o *Options) { o.Config.Webhook.URL = hs.URL })
	ctx := context.Background()
	for _, name := range []string{"One", "Two"} {
		rq := e.submit(e.item(name, 20), nil)
		if _, err := e.approve(ctx, rq.ID); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := e.r.RunReminders(ctx); err != nil || res.Queued != 2 || res.Failed != 2 {
		t.Fatalf("reminders with the webhook down = %+v, %v; want 2 queued, 2 failed", res, err)
	}
	l := e.notifications(e.officer, "status=pending")
	if len(l.Items) != 2 || l.Items[0].Attempts != 1 || !strings.Contains(l.Items[0].LastError, "503") {
		t.Fatalf("pending = %+v; want both pending after one attempt with the error", l)
	}
	// One is given up: attempts up to the bound.
	first := l.Items[0].ID
	for range e.r.cfg.MaxAttempts {
		e.r.deliverNotification(ctx, first)
	}
	up.Store(true)
	e.r.DeliverPending(ctx)
	if got.Load() != 1 {
		t.Errorf("webhook received %d notifications, want 1", got.Load())
	}
	if l := e.notifications(e.officer, "status=failed"); len(l.Items) != 1 || l.Items[0].ID != first {
		t.Errorf("failed = %+v; want %s given up", l, first)
	}
	if l := e.notifications(e.officer, "status=sent"); len(l.Items) != 1 || l.Items[0].Channels["webhook"] != "sent" {
		t.Errorf("sent = %+v; want the other delivered by webhook", l)
	}
}
