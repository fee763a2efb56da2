package ra

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Every notification of the RA goes through a durable outbox: it is written
// in the transaction of the event that causes it (a reminder is due, a
// renewal is issued), then delivered to the configured channels, retried
// until ra.max_attempts, and kept whatever happens, readable through
// GET /api/v1/notifications and `certcenter ra notifications`. With no
// channel configured a notification is held there for staff and
// administrators to read, instead of vanishing.

// Notification events.
const (
	EventRenewalReminder = "renewal_reminder"
	EventRenewed         = "renewed"
)

// Channels.
const (
	channelWebhook = "webhook"
	channelEmail   = "email"
)

// noChannel says that neither e-mail nor a webhook is configured.
func (r *RA) noChannel() bool { return r.cfg.SMTP.Addr == "" && r.cfg.Webhook.URL == "" }

// queueNotification stores n in the outbox within tx. payload is the
// webhook's JSON object; the notification's ID is added to it so a
// receiver can drop a repeat.
func (r *RA) queueNotification(tx *store.Tx, n *store.RANotification, payload map[string]any) error {
	seq, err := r.st.Next("ra-notification")
	if err != nil {
		return fmt.Errorf("numbering notification: %w", err)
	}
	n.ID = fmt.Sprintf("ntf-%010d", seq)
	n.CreatedAt = r.now().UTC()
	payload["notification"] = n.ID
	if n.Payload, err = json.Marshal(payload); err != nil {
		return fmt.Errorf("encoding notification payload: %w", err)
	}
	n.Channels = map[string]string{}
	if r.cfg.Webhook.URL != "" {
		n.Channels[channelWebhook] = store.NotificationPending
	}
	if r.cfg.SMTP.Addr != "" && len(n.Recipients) > 0 {
		n.Channels[channelEmail] = store.NotificationPending
	}
	n.Status = store.NotificationPending
	if len(n.Channels) == 0 {
		n.Status = store.NotificationHeld
	}
	return tx.PutRANotification(n)
}

// deliverNotification tries the channels of a pending notification that
// have not taken it yet and records the outcome: sent when every channel
// took it, else one more attempt (failed at ra.max_attempts). It returns
// the channels that took it now.
func (r *RA) deliverNotification(ctx context.Context, id string) ([]string, error) {
	release, err := r.executing.acquire(ctx, id, false)
	if err != nil {
		return nil, err
	}
	defer release()
	var n *store.RANotification
	if err := r.st.View(ctx, func(tx *store.Tx) (err error) { n, err = tx.RANotification(id); return err }); err != nil {
		return nil, err
	}
	if n.Status != store.NotificationPending {
		return nil, nil
	}
	var sent []string
	var errs []string
	for _, ch := range slices.Sorted(maps.Keys(n.Channels)) {
		if n.Channels[ch] != store.NotificationPending {
			continue
		}
		var err error
		switch ch {
		case channelWebhook:
			err = r.notify.hook(ctx, n.Payload)
		case channelEmail:
			err = r.notify.mail(ctx, n.Recipients, n.Subject, n.Body)
		}
		result := "sent"
		if err != nil {
			result = "failed"
			errs = append(errs, ch+": "+err.Error())
			r.log.Warn("notification delivery failed", "notification", n.ID, "event", n.Event, "channel", ch, "err", err)
		} else {
			sent = append(sent, ch)
		}
		if n.Event == EventRenewalReminder {
			r.m.reminders.WithLabelValues(ch, result).Inc()
		}
	}
	err = r.st.Update(ctx, func(tx *store.Tx) error {
		cur, err := tx.RANotification(id)
		if err != nil {
			return err
		}
		for _, ch := range sent {
			cur.Channels[ch] = store.NotificationSent
		}
		if len(errs) == 0 {
			cur.Status, cur.SentAt, cur.LastError = store.NotificationSent, r.now().UTC(), ""
		} else {
			cur.Attempts++
			cur.LastError = strings.Join(errs, "; ")
			if cur.Attempts >= r.cfg.MaxAttempts {
				cur.Status = store.NotificationFailed
			}
		}
		return tx.PutRANotification(cur)
	})
	if err != nil {
		return sent, fmt.Errorf("recording delivery of notification %s: %w", id, err)
	}
	return sent, nil
}

// DeliverPending retries every pending notification.
func (r *RA) DeliverPending(ctx context.Context) {
	var ids []string
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		return tx.PendingRANotifications(func(id string) error { ids = append(ids, id); return nil })
	}); err != nil {
		if ctx.Err() == nil {
			r.log.Error("finding pending notifications", "err", err)
		}
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if _, err := r.deliverNotification(ctx, id); err != nil && !errors.Is(err, errClaimed) {
			r.log.Error("delivering notification", "notification", id, "err", err)
		}
	}
}

// recipientsOf lists the e-mail addresses of a person and the
// administrators of their organisation, without repeats.
func recipientsOf(tx *store.Tx, email, org string) []string {
	var to []string
	if email != "" {
		to = append(to, email)
	}
	if org != "" {
		_ = tx.CertAdminsOf(org, func(a *store.CertAdmin) error {
			if a.Email != "" && !slices.Contains(to, a.Email) {
				to = append(to, a.Email)
			}
			return nil
		})
	}
	return to
}

// queueRenewed stores the notification that a renewed certificate is ready
// behind a one-time link, in the transaction that records the renewal.
func (r *RA) queueRenewed(tx *store.Tx, rq *store.RARequest, c *store.Cert, token string) (string, error) {
	to := recipientsOf(tx, rq.Person.Email, rq.OrgID)
	link := r.downloadURL(token)
	n := &store.RANotification{Event: EventRenewed, Org: rq.OrgID, Request: rq.ID, Serial: c.SerialHex(), Recipients: to,
		Subject: "证书已更新 / Certificate renewed: " + c.CommonName,
		Body: fmt.Sprintf("The renewed certificate %s (serial %s) is ready. Download it once, within %s, from:\n%s\n\n更新后的证书已签发，请通过以上一次性链接下载。\n",
			c.Subject, c.SerialHex(), r.cfg.DownloadTTL.D(), link)}
	payload := map[string]any{"event": EventRenewed, "request": rq.ID, "serial": c.SerialHex(), "renews": hex.EncodeToString(rq.TargetSerial),
		"subject": c.Subject, "org": rq.OrgID, "download_url": link, "recipients": to}
	if err := r.queueNotification(tx, n, payload); err != nil {
		return "", err
	}
	return n.ID, nil
}

// listNotifications lists the outbox, oldest first: staff all of it, an
// administrator their organisation's.
func (r *RA) listNotifications(w http.ResponseWriter, req *http.Request) error {
	limit, after, err := httpapi.Page(req)
	if err != nil {
		return err
	}
	q := req.URL.Query()
	c := callerFrom(req.Context())
	status := q.Get("status")
	if status != "" && !slices.Contains([]string{store.NotificationPending, store.NotificationSent, store.NotificationFailed, store.NotificationHeld}, status) {
		return httpapi.BadRequest("status %q is not one of pending, sent, failed, held", status)
	}
	out := []*store.RANotification{}
	next := ""
	err = r.st.View(req.Context(), func(tx *store.Tx) error {
		return tx.EachRANotification(after, func(n *store.RANotification) error {
			if (status != "" && n.Status != status) || (q.Get("event") != "" && n.Event != q.Get("event")) ||
				(q.Get("org") != "" && n.Org != q.Get("org")) || (q.Get("request") != "" && n.Request != q.Get("request")) ||
				(q.Get("serial") != "" && !strings.EqualFold(n.Serial, q.Get("serial"))) {
				return nil
			}
			if c.Admin != nil && n.Org != c.Admin.OrgID {
				return nil
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				return httpapi.ErrPageFull
			}
			out = append(out, n)
			return nil
		})
	})
	if err != nil && !errors.Is(err, httpapi.ErrPageFull) {
		return err
	}
	return httpapi.WritePage(w, out, next)
}
