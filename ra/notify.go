package ra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/certcenter/certcenter/config"
)

// notifier sends reminders and notifications by webhook and by e-mail
// through an SMTP relay. Either channel may be unconfigured.
type notifier struct {
	smtp    config.RASMTP
	hookURL string
	client  *http.Client
}

func newNotifier(c config.RA, client *http.Client) *notifier {
	return &notifier{smtp: c.SMTP, hookURL: c.Webhook.URL, client: client}
}

var errNoChannel = errors.New("channel not configured")

// hook POSTs payload as JSON; any 2xx is delivery.
func (n *notifier) hook(ctx context.Context, payload any) error {
	if n.hookURL == "" {
		return errNoChannel
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.hookURL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// mail sends one plain-text message to the recipients.
func (n *notifier) mail(ctx context.Context, to []string, subject, body string) error {
	if n.smtp.Addr == "" {
		return errNoChannel
	}
	if len(to) == 0 {
		return errors.New("no e-mail recipient")
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", n.smtp.Addr)
	if err != nil {
		return fmt.Errorf("connecting to SMTP relay %s: %w", n.smtp.Addr, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(n.smtp.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting from %s: %w", n.smtp.Addr, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(nil); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	}
	if n.smtp.Username != "" {
		// net/smtp's PLAIN refuses to send the password unencrypted except to localhost.
		if err := c.Auth(smtp.PlainAuth("", n.smtp.Username, os.Getenv(n.smtp.PasswordEnv), host)); err != nil {
			return fmt.Errorf("SMTP authentication: %w", err)
		}
	}
	if err := c.Mail(n.smtp.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", rcpt, err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	msg := "From: " + n.smtp.From + "\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: " + mime.QEncoding.Encode("utf-8", subject) +
		"\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n")
	if _, err := wc.Write([]byte(msg)); err != nil {
		return fmt.Errorf("SMTP message: %w", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("SMTP message: %w", err)
	}
	return c.Quit()
}
