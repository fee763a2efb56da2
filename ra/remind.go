package ra

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

const nsReminder = "ra-reminder"

// ReminderResult counts one run of the reminder job: certificates in a
// window, reminders queued in the outbox, and of those the ones a channel
// took now and the ones whose delivery failed (retried from the outbox).
type ReminderResult struct {
	Checked int `json:"checked"`
	Queued  int `json:"queued"`
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
}

type reminderJob struct {
	cert    *store.Cert
	window  int
	org     string
	to      []string
	covered []int
}

// RunReminders finds certificates that expire within a reminder window and
// reminds the subscriber and the organisation's administrators, by webhook
// and e-mail (SPEC Art. 10). Each certificate is reminded once per window:
// the reminder is recorded after a channel accepted it, so a failed one is
// retried on the next run. A certificate first seen inside the 7-day window
// gets that reminder only, not the 30-day one too.
func (r *RA) RunReminders(ctx context.Context) (ReminderResult, error) {
	r.remindMu.Lock()
	defer r.remindMu.Unlock()
	var res ReminderResult
	windows := slices.Clone(r.cfg.ReminderLeadDays)
	slices.Sort(windows)
	now := r.now()
	horizon := now.Add(time.Duration(windows[len(windows)-1]) * 24 * time.Hour)
	var jobs []reminderJob
	err := r.st.View(ctx, func(tx *store.Tx) error {
		return tx.CertsExpiring(now, horizon, func(c *store.Cert) error {
			if c.Status == store.StatusRevoked || c.Profile == ca.ProfileOCSPSigning {
				return nil
			}
			if _, err := tx.SupersededBy(c.Serial); err == nil {
				return nil // renewed: its successor is reminded in its time
			}
			res.Checked++
			left := c.NotAfter.Sub(now)
			var j reminderJob
			for _, w := range windows {
				if left <= time.Duration(w)*24*time.Hour {
					if j.window == 0 {
						j.window = w
					}
					j.covered = append(j.covered, w)
				}
			}
			if _, err := tx.Blob(nsReminder, reminderKey(c, j.window)); err == nil {
				return nil
			}
			j.cert = c
			if org, err := tx.CertOrg(c.Serial); err == nil {
				j.org = org
			}
			email := ""
			if sub, err := tx.Subscriber(c.SubscriberID); err == nil {
				email = sub.Email
			}
			j.to = recipientsOf(tx, email, j.org)
			if len(j.to) == 0 && j.org == "" {
				return nil // nobody to remind: a CA service certificate
			}
			jobs = append(jobs, j)
			return nil
		})
	})
	if err != nil {
		return res, fmt.Errorf("finding expiring certificates: %w", err)
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var id string
		err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
			n, payload := r.reminder(j)
			if err := r.queueNotification(tx, n, payload); err != nil {
				return err
			}
			id = n.ID
			for _, w := range j.covered {
				if err := tx.PutBlob(nsReminder, reminderKey(j.cert, w), []byte(r.now().UTC().Format(time.RFC3339))); err != nil {
					return err
				}
			}
			return log(audit.Record{Actor: "system", Action: "ra.remind", Object: "cert/" + j.cert.SerialHex(), Details: map[string]string{
				"window_days": strconv.Itoa(j.window), "not_after": j.cert.NotAfter.Format(time.RFC3339), "notification": n.ID,
				"channels": fmt.Sprint(slices.Sorted(maps.Keys(n.Channels))), "to": fmt.Sprint(j.to)}})
		})
		if err != nil {
			return res, fmt.Errorf("recording reminder for %s: %w", j.cert.SerialHex(), err)
		}
		res.Queued++
		if r.noChannel() {
			continue
		}
		sent, err := r.deliverNotification(ctx, id)
		switch {
		case err != nil:
			r.log.Error("delivering reminder", "notification", id, "err", err)
			res.Failed++
		case len(sent) == 0:
			res.Failed++
		default:
			res.Sent++
		}
	}
	return res, nil
}

func reminderKey(c *store.Cert, window int) string {
	return hex.EncodeToString(c.Serial) + "/" + strconv.Itoa(window)
}

// reminder is the outbox entry of one reminder.
func (r *RA) reminder(j reminderJob) (*store.RANotification, map[string]any) {
	days := int(j.cert.NotAfter.Sub(r.now()).Hours() / 24)
	payload := map[string]any{
		"event": EventRenewalReminder, "serial": j.cert.SerialHex(), "subject": j.cert.Subject, "org": j.org,
		"not_after": j.cert.NotAfter, "window_days": j.window, "days_left": days, "recipients": j.to,
	}
	n := &store.RANotification{Event: EventRenewalReminder, Org: j.org, Serial: j.cert.SerialHex(), Recipients: j.to,
		Subject: fmt.Sprintf("证书即将到期 / Certificate expires in %d days: %s", days, j.cert.CommonName),
		Body: fmt.Sprintf("The certificate %s (serial %s) expires on %s.\n"+
			"Your organisation's certificate administrator can submit its renewal on the service platform.\n\n"+
			"证书 %s（序列号 %s）将于 %s 到期，请由单位证书管理员在服务平台提交更新申请。\n",
			j.cert.Subject, j.cert.SerialHex(), j.cert.NotAfter.Format(time.DateOnly),
			j.cert.Subject, j.cert.SerialHex(), j.cert.NotAfter.Format(time.DateOnly))}
	return n, payload
}
