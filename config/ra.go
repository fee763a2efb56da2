package config

import (
	"net/url"
	"slices"
	"time"

	"github.com/certcenter/certcenter/internal/workday"
)

// RA configures the registration authority's workflows (SPEC Art. 7-14).
type RA struct {
	// IssueDeadlineDays, RenewDeadlineDays and RevokeDeadlineDays are the
	// working days a request may take (SPEC Art. 9-11). Defaults 5, 2, 1.
	IssueDeadlineDays  int `yaml:"issue_deadline_days"`
	RenewDeadlineDays  int `yaml:"renew_deadline_days"`
	RevokeDeadlineDays int `yaml:"revoke_deadline_days"`
	// UnlockDeadlineDays is the working days a USBKey unlock may take
	// (SPEC Art. 12), ReplaceDeadlineDays a USBKey replacement (Art. 25).
	// Defaults 2, 5.
	UnlockDeadlineDays  int `yaml:"unlock_deadline_days"`
	ReplaceDeadlineDays int `yaml:"replace_deadline_days"`
	// SuperiorApprovals is the number of distinct administrators of the
	// superior organisation that approve a multi-level organisation's request.
	// Default 1.
	SuperiorApprovals int `yaml:"superior_approvals"`
	// CAApprovals is the number of distinct RA officers that approve at CA
	// review. Default 1.
	CAApprovals int `yaml:"ca_approvals"`
	// AutoRevokeCauses are revocation causes executed at once, without a CA
	// operator: key_lost, token_damaged, info_changed, documents_invalid.
	// Default [key_lost].
	AutoRevokeCauses []string `yaml:"auto_revoke_causes"`
	// ReminderLeadDays are the renewal reminder windows before expiry, in
	// days. Default [30, 7].
	ReminderLeadDays []int `yaml:"reminder_lead_days"`
	// ReminderInterval is how often the reminder job runs. Default 24h.
	ReminderInterval Duration `yaml:"reminder_interval"`
	// DownloadTTL is how long a one-time download link lives. Default 72h.
	DownloadTTL Duration `yaml:"download_ttl"`
	// DownloadBaseURL prefixes one-time download links in notifications.
	// Default "https://localhost:8443".
	DownloadBaseURL string     `yaml:"download_base_url"`
	Calendar        RACalendar `yaml:"calendar"`
	SMTP            RASMTP     `yaml:"smtp"`
	Webhook         RAWebhook  `yaml:"webhook"`

	// MaxAttempts bounds the executions of an approved request (issue,
	// renew, revoke) that fail; then the request is failed with the last
	// error. Default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// SupersedePolicy is what happens to a renewed certificate: "revoke"
	// (revoked as superseded when the new one is delivered) or "keep"
	// (valid until it expires). Either way it is marked superseded: it is
	// not renewed twice and gets no more reminders. Default "revoke".
	SupersedePolicy string `yaml:"supersede_policy"`
	// RequireLeaderApproval refuses issue and renew applications that do
	// not carry the approving leader's name and date (SPEC Art. 8.2);
	// when false an approval given is still checked and recorded.
	// Default false.
	RequireLeaderApproval bool `yaml:"require_leader_approval"`
	// IDNumberInSubject is whether an application's id_number (a national
	// ID number) goes into the certificate subject's serialNumber: "omit"
	// or "include". A certificate is public — the directory publishes it
	// in userCertificate;binary — so the default keeps the number out; the
	// RA's own records keep it either way. No hashed form is offered: an
	// 18-digit ID number with its check digit is found from its hash in
	// seconds. Default "omit".
	IDNumberInSubject string `yaml:"id_number_in_subject"`

	// Escrow configures encryption certificates and key recovery.
	Escrow RAEscrow `yaml:"escrow"`
}

// RACalendar is the working-day calendar of deadlines.
type RACalendar struct {
	// Builtin is "cn" (the State Council's statutory holidays and make-up
	// working days of every year github.com/6tail/lunar-go carries) or
	// "none" (weekends only). "cn-2026", the former name, means "cn".
	// Default "cn".
	Builtin string `yaml:"builtin"`
	// Holidays and MakeupWorkdays (YYYY-MM-DD) are added to the built-in ones.
	Holidays       []string `yaml:"holidays"`
	MakeupWorkdays []string `yaml:"makeup_workdays"`
	// UTCOffsetHours decides which calendar day an instant falls on. Default 8.
	UTCOffsetHours int `yaml:"utc_offset_hours"`
	// OverridesFile is a CSV file of "YYYY-MM-DD,holiday|workday[,note]"
	// lines that win over the built-in data: a year's notice the built-in
	// data lacks, or a change to it. A year with any line counts as known.
	// Read and checked at load. Default "" (none).
	OverridesFile string `yaml:"overrides_file"`
}

// RASMTP is the mail relay for reminders and notifications.
type RASMTP struct {
	// Addr is host:port of the relay; empty disables e-mail.
	Addr string `yaml:"addr"`
	// From is the envelope and header sender. Default "certcenter@localhost".
	From string `yaml:"from"`
	// Username enables PLAIN authentication (only over TLS or to localhost);
	// the password comes from the environment variable PasswordEnv.
	// Default PasswordEnv "CERTCENTER_SMTP_PASSWORD".
	Username    string `yaml:"username"`
	PasswordEnv string `yaml:"password_env"`
}

// RAWebhook receives reminders and notifications as JSON POSTs.
type RAWebhook struct {
	// URL is an http(s) URL; empty disables the webhook.
	URL string `yaml:"url"`
	// Timeout of one delivery. Default 10s.
	Timeout Duration `yaml:"timeout"`
}

// defaultRA is the RA section of Default.
func defaultRA() RA {
	return RA{
		IssueDeadlineDays: 5, RenewDeadlineDays: 2, RevokeDeadlineDays: 1,
		UnlockDeadlineDays: 2, ReplaceDeadlineDays: 5,
		SuperiorApprovals: 1, CAApprovals: 1,
		AutoRevokeCauses: []string{"key_lost"},
		ReminderLeadDays: []int{30, 7},
		ReminderInterval: Duration(24 * time.Hour),
		DownloadTTL:      Duration(72 * time.Hour),
		DownloadBaseURL:  "https://localhost:8443",
		Calendar:         RACalendar{Builtin: "cn", UTCOffsetHours: 8},
		SMTP:             RASMTP{From: "certcenter@localhost", PasswordEnv: "CERTCENTER_SMTP_PASSWORD"},
		Webhook:          RAWebhook{Timeout: Duration(10 * time.Second)},

		MaxAttempts:       5,
		SupersedePolicy:   "revoke",
		IDNumberInSubject: "omit",
		Escrow:            defaultRAEscrow(),
	}
}

// validate reports each bad value of the ra section through bad.
func (r *RA) validate(bad func(key, format string, a ...any), checkAddr func(key, v string, optional bool)) {
	for key, v := range map[string]int{
		"ra.issue_deadline_days":  r.IssueDeadlineDays,
		"ra.renew_deadline_days":  r.RenewDeadlineDays,
		"ra.revoke_deadline_days": r.RevokeDeadlineDays,
	} {
		if v < 0 || v > 60 {
			bad(key, "must be between 0 and 60 working days")
		}
	}
	if r.UnlockDeadlineDays < 0 || r.UnlockDeadlineDays > 60 {
		bad("ra.unlock_deadline_days", "must be between 0 and 60 working days")
	}
	if r.ReplaceDeadlineDays < 0 || r.ReplaceDeadlineDays > 60 {
		bad("ra.replace_deadline_days", "must be between 0 and 60 working days")
	}
	if r.SuperiorApprovals < 1 || r.SuperiorApprovals > 10 {
		bad("ra.superior_approvals", "must be between 1 and 10")
	}
	if r.CAApprovals < 1 || r.CAApprovals > 10 {
		bad("ra.ca_approvals", "must be between 1 and 10")
	}
	for _, c := range r.AutoRevokeCauses {
		if !slices.Contains([]string{"key_lost", "token_damaged", "info_changed", "documents_invalid"}, c) {
			bad("ra.auto_revoke_causes", "%q is not one of key_lost, token_damaged, info_changed, documents_invalid", c)
		}
	}
	if len(r.ReminderLeadDays) == 0 {
		bad("ra.reminder_lead_days", "needs at least one window")
	}
	for _, d := range r.ReminderLeadDays {
		if d < 1 || d > 365 {
			bad("ra.reminder_lead_days", "%d is not between 1 and 365 days", d)
		}
	}
	if r.ReminderInterval.D() < time.Minute {
		bad("ra.reminder_interval", "must be at least 1m")
	}
	if r.DownloadTTL <= 0 {
		bad("ra.download_ttl", "must be a positive duration")
	}
	if u, err := url.Parse(r.DownloadBaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		bad("ra.download_base_url", "%q is not an http(s) URL", r.DownloadBaseURL)
	}
	if !slices.Contains([]string{"cn", "cn-2026", "none"}, r.Calendar.Builtin) {
		bad("ra.calendar.builtin", "%q is not one of cn, cn-2026, none", r.Calendar.Builtin)
	}
	if r.Calendar.OverridesFile != "" {
		if _, err := workday.ReadOverrides(r.Calendar.OverridesFile); err != nil {
			bad("ra.calendar.overrides_file", "%v", err)
		}
	}
	for key, days := range map[string][]string{"ra.calendar.holidays": r.Calendar.Holidays, "ra.calendar.makeup_workdays": r.Calendar.MakeupWorkdays} {
		for _, d := range days {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				bad(key, "%q is not a YYYY-MM-DD date", d)
			}
		}
	}
	if r.Calendar.UTCOffsetHours < -12 || r.Calendar.UTCOffsetHours > 14 {
		bad("ra.calendar.utc_offset_hours", "must be between -12 and 14")
	}
	checkAddr("ra.smtp.addr", r.SMTP.Addr, true)
	if r.SMTP.Addr != "" && r.SMTP.From == "" {
		bad("ra.smtp.from", "is required when ra.smtp.addr is set")
	}
	if r.Webhook.URL != "" {
		if u, err := url.Parse(r.Webhook.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("ra.webhook.url", "%q is not an http(s) URL", r.Webhook.URL)
		}
	}
	if r.Webhook.Timeout <= 0 {
		bad("ra.webhook.timeout", "must be a positive duration")
	}

	if r.MaxAttempts < 1 || r.MaxAttempts > 100 {
		bad("ra.max_attempts", "must be between 1 and 100")
	}
	if r.SupersedePolicy != "revoke" && r.SupersedePolicy != "keep" {
		bad("ra.supersede_policy", "%q is not one of revoke, keep", r.SupersedePolicy)
	}
	if r.IDNumberInSubject != "omit" && r.IDNumberInSubject != "include" {
		bad("ra.id_number_in_subject", "%q is not one of omit, include", r.IDNumberInSubject)
	}
	r.Escrow.validate(bad)
}
