package ra

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

const nsReminder = "ra-reminder"

// ReminderResult counts one run of the reminder job.
type ReminderResult struct {
	Checked int `json:"checked"`
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
			if sub, err := tx.Subscriber(c.SubscriberID); err == nil && sub.Email != "" {
				j.to = append(j.to, sub.Email)
			}
			if org, err := tx.CertOrg(c.Serial); err == nil {
				j.org = org
				_ = tx.CertAdminsOf(org, func(a *store.CertAdmin) error {
					if a.Email != "" && !slices.Contains(j.to, a.Email) {
						j.to = append(j.to, a.Email)
					}
					return nil
				})
			}
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
		channels := r.sendReminder(ctx, j)
		if len(channels) == 0 {
			res.Failed++
			continue
		}
		err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
			for _, w := range j.covered {
				if err := tx.PutBlob(nsReminder, reminderKey(j.cert, w), []byte(r.now().UTC().Format(time.RFC3339))); err != nil {
					return err
				}
			}
			return log(audit.Record{Actor: "system", Action: "ra.remind", Object: "cert/" + j.cert.SerialHex(), Details: map[string]string{
				"window_days": strconv.Itoa(j.window), "not_after": j.cert.NotAfter.Format(time.RFC3339), "channels": fmt.Sprint(channels), "to": fmt.Sprint(j.to)}})
		})
		if err != nil {
			return res, fmt.Errorf("recording reminder for %s: %w", j.cert.SerialHex(), err)
		}
		res.Sent++
	}
	return res, nil
}

func reminderKey(c *store.Cert, window int) string {
	return hex.EncodeToString(c.Serial) + "/" + strconv.Itoa(window)
}

// sendReminder tries every configured channel and returns those that took it.
func (r *RA) sendReminder(ctx context.Context, j reminderJob) []string {
	var ok []string
	days := int(j.cert.NotAfter.Sub(r.now()).Hours() / 24)
	payload := map[string]any{
		"event": "renewal_reminder", "serial": j.cert.SerialHex(), "subject": j.cert.Subject, "org": j.org,
		"not_after": j.cert.NotAfter, "window_days": j.window, "days_left": days, "recipients": j.to,
	}
	if err := r.notify.hook(ctx, payload); err == nil {
		ok = append(ok, "webhook")
		r.m.reminders.WithLabelValues("webhook", "sent").Inc()
	} else if !errors.Is(err, errNoChannel) {
		r.m.reminders.WithLabelValues("webhook", "failed").Inc()
		r.log.Warn("renewal reminder webhook failed", "serial", j.cert.SerialHex(), "err", err)
	}
	if len(j.to) > 0 {
		subject := fmt.Sprintf("证书即将到期 / Certificate expires in %d days: %s", days, j.cert.CommonName)
		body := fmt.Sprintf("The certificate %s (serial %s) expires on %s.\n"+
			"Your organisation's certificate administrator can submit its renewal on the service platform.\n\n"+
			"证书 %s（序列号 %s）将于 %s 到期，请由单位证书管理员在服务平台提交更新申请。\n",
			j.cert.Subject, j.cert.SerialHex(), j.cert.NotAfter.Format(time.DateOnly),
			j.cert.Subject, j.cert.SerialHex(), j.cert.NotAfter.Format(time.DateOnly))
		if err := r.notify.mail(ctx, j.to, subject, body); err == nil {
			ok = append(ok, "email")
			r.m.reminders.WithLabelValues("email", "sent").Inc()
		} else if !errors.Is(err, errNoChannel) {
			r.m.reminders.WithLabelValues("email", "failed").Inc()
			r.log.Warn("renewal reminder e-mail failed", "serial", j.cert.SerialHex(), "err", err)
		}
	}
	return ok
}

// notifyRenewed tells the administrators that a renewed certificate is ready
// behind a one-time link.
func (r *RA) notifyRenewed(ctx context.Context, rq *store.RARequest, c *store.Cert, token string) {
	var to []string
	_ = r.st.View(ctx, func(tx *store.Tx) error {
		if rq.Person.Email != "" {
			to = append(to, rq.Person.Email)
		}
		return tx.CertAdminsOf(rq.OrgID, func(a *store.CertAdmin) error {
			if a.Email != "" && !slices.Contains(to, a.Email) {
				to = append(to, a.Email)
			}
			return nil
		})
	})
	link := r.downloadURL(token)
	payload := map[string]any{"event": "renewed", "request": rq.ID, "serial": c.SerialHex(), "renews": hex.EncodeToString(rq.TargetSerial),
		"subject": c.Subject, "org": rq.OrgID, "download_url": link, "recipients": to}
	if err := r.notify.hook(ctx, payload); err != nil && !errors.Is(err, errNoChannel) {
		r.log.Warn("renewal notification webhook failed", "request", rq.ID, "err", err)
	}
	if len(to) > 0 {
		body := fmt.Sprintf("The renewed certificate %s (serial %s) is ready. Download it once, within %s, from:\n%s\n\n更新后的证书已签发，请通过以上一次性链接下载。\n",
			c.Subject, c.SerialHex(), r.cfg.DownloadTTL.D(), link)
		if err := r.notify.mail(ctx, to, "证书已更新 / Certificate renewed: "+c.CommonName, body); err != nil && !errors.Is(err, errNoChannel) {
			r.log.Warn("renewal notification e-mail failed", "request", rq.ID, "err", err)
		}
	}
}
