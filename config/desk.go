package config

import (
	"fmt"
	"mime"
	"strings"
	"time"
)

// Desk configures the service desk's tickets (SPEC Art. 15-26). The
// specification names the incident classes but no times: the targets'
// defaults are ours.
type Desk struct {
	// OfficeHours are the hours of a 5x8 working day, "HH:MM-HH:MM" in the
	// RA calendar's time zone (ra.calendar.utc_offset_hours); working days
	// come from the RA's calendar. Default "09:00-17:00".
	OfficeHours string `yaml:"office_hours"`
	// Handover is how long the group a ticket is passed to has to take it
	// (SPEC Art. 22: 15 minutes), on the ticket's calendar. Default 15m.
	Handover Duration `yaml:"handover"`
	// WarnBefore is how long before a deadline a warning is recorded.
	// Default 30m.
	WarnBefore Duration `yaml:"warn_before"`
	// DuplicateWindow is how far back an open ticket of the same requester
	// or certificate and category counts as a duplicate. Default 72h.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// EvaluateInterval is how often the SLA clocks are evaluated. Default 1m.
	EvaluateInterval Duration `yaml:"evaluate_interval"`
	// AttachmentMaxBytes bounds one attachment. Default 4194304 (4 MiB).
	AttachmentMaxBytes ByteSize `yaml:"attachment_max_bytes"`
	// AttachmentTypes are the media types accepted, as detected from the
	// content (not the name). Default PDF, PNG, JPEG, GIF, plain text, ZIP
	// (which covers .docx and .xlsx).
	AttachmentTypes []string `yaml:"attachment_types"`
	// SurveyTTL is how long a survey's one-time link stays valid after a
	// ticket closes. Default 720h.
	SurveyTTL Duration `yaml:"survey_ttl"`
	// SurveyBaseURL prefixes survey links. Default "https://localhost:8443".
	SurveyBaseURL string `yaml:"survey_base_url"`
	// Categories is the category tree as slash-separated paths; a parent
	// of a listed path is a category too. Default: the support scope of
	// SPEC Art. 5-6.
	Categories []string `yaml:"categories"`
	// ReplacementCategory is the category whose tickets open an RA USBKey
	// replacement request (SPEC Art. 25). Default "token_use/usbkey_replacement".
	ReplacementCategory string `yaml:"replacement_category"`
	// Targets are response and resolution times per incident class, as
	// business time on the ticket's calendar.
	Targets DeskTargets `yaml:"targets"`
}

// DeskTargets are the SLA targets of the three incident classes.
type DeskTargets struct {
	General DeskTarget `yaml:"general"`
	Serious DeskTarget `yaml:"serious"`
	Major   DeskTarget `yaml:"major"`
}

// DeskTarget is one class's response and resolution time.
type DeskTarget struct {
	Response   Duration `yaml:"response"`
	Resolution Duration `yaml:"resolution"`
}

// DefaultDeskCategories is the support scope of SPEC Art. 5-6.
var DefaultDeskCategories = []string{
	"certificate_management/import_export", "certificate_management/client_tools",
	"certificate_use/cannot_read", "certificate_use/signing_fails", "certificate_use/verification_fails",
	"token_use/pin_locked", "token_use/driver", "token_use/token_fault", "token_use/usbkey_replacement",
	"online_platform/renewal_fails", "online_platform/download_fails", "online_platform/revocation_submit",
	"systems/ra", "systems/acceptance", "systems/ldap", "systems/ocsp", "systems/information_service",
	"middleware/client_platform", "middleware/server_component", "middleware/server_certificate", "middleware/sign_verify",
	"complaint",
}

func defaultDesk() Desk {
	return Desk{
		OfficeHours: "09:00-17:00", Handover: Duration(15 * time.Minute), WarnBefore: Duration(30 * time.Minute),
		DuplicateWindow: Duration(72 * time.Hour), EvaluateInterval: Duration(time.Minute),
		AttachmentMaxBytes: 4 << 20,
		AttachmentTypes:    []string{"application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain", "application/zip"},
		SurveyTTL:          Duration(720 * time.Hour), SurveyBaseURL: "https://localhost:8443",
		Categories:          append([]string(nil), DefaultDeskCategories...),
		ReplacementCategory: "token_use/usbkey_replacement",
		Targets: DeskTargets{
			General: DeskTarget{Response: Duration(4 * time.Hour), Resolution: Duration(40 * time.Hour)},
			Serious: DeskTarget{Response: Duration(time.Hour), Resolution: Duration(16 * time.Hour)},
			Major:   DeskTarget{Response: Duration(30 * time.Minute), Resolution: Duration(8 * time.Hour)},
		},
	}
}

// ParseOfficeHours reads "HH:MM-HH:MM" into offsets from midnight.
func ParseOfficeHours(s string) (start, end time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	p := func(v string) (time.Duration, error) {
		t, err := time.Parse("15:04", strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%q is not HH:MM-HH:MM", s)
		}
		return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
	}
	if start, err = p(a); err != nil {
		return 0, 0, err
	}
	if end, err = p(b); err != nil {
		return 0, 0, err
	}
	if end <= start {
		return 0, 0, fmt.Errorf("%q ends before it starts", s)
	}
	return start, end, nil
}

func (d *Desk) validate(bad func(key, format string, a ...any)) {
	if _, _, err := ParseOfficeHours(d.OfficeHours); err != nil {
		bad("desk.office_hours", "%v", err)
	}
	for key, v := range map[string]Duration{
		"desk.handover": d.Handover, "desk.warn_before": d.WarnBefore, "desk.duplicate_window": d.DuplicateWindow,
		"desk.evaluate_interval": d.EvaluateInterval, "desk.survey_ttl": d.SurveyTTL,
		"desk.targets.general.response": d.Targets.General.Response, "desk.targets.general.resolution": d.Targets.General.Resolution,
		"desk.targets.serious.response": d.Targets.Serious.Response, "desk.targets.serious.resolution": d.Targets.Serious.Resolution,
		"desk.targets.major.response": d.Targets.Major.Response, "desk.targets.major.resolution": d.Targets.Major.Resolution,
	} {
		if v <= 0 {
			bad(key, "must be positive")
		}
	}
	for _, c := range []struct {
		key string
		t   DeskTarget
	}{{"desk.targets.general", d.Targets.General}, {"desk.targets.serious", d.Targets.Serious}, {"desk.targets.major", d.Targets.Major}} {
		if c.t.Resolution < c.t.Response {
			bad(c.key, "resolution must not be shorter than response")
		}
	}
	if d.AttachmentMaxBytes < 1024 || d.AttachmentMaxBytes > 64<<20 {
		bad("desk.attachment_max_bytes", "must be between 1KiB and 64MiB")
	}
	if len(d.AttachmentTypes) == 0 {
		bad("desk.attachment_types", "must list at least one media type")
	}
	for _, t := range d.AttachmentTypes {
		if mt, _, err := mime.ParseMediaType(t); err != nil || mt != t {
			bad("desk.attachment_types", "%q is not a media type without parameters", t)
		}
	}
	if len(d.Categories) == 0 {
		bad("desk.categories", "must list at least one category")
	}
	known := map[string]bool{}
	for _, c := range d.Categories {
		if c == "" || strings.HasPrefix(c, "/") || strings.HasSuffix(c, "/") || strings.Contains(c, "//") {
			bad("desk.categories", "%q is not a slash-separated path", c)
		}
		for p := c; p != ""; p, _, _ = cutLast(p) {
			known[p] = true
		}
	}
	if d.ReplacementCategory != "" && !known[d.ReplacementCategory] {
		bad("desk.replacement_category", "%q is not in desk.categories", d.ReplacementCategory)
	}
	if !strings.HasPrefix(d.SurveyBaseURL, "https://") && !strings.HasPrefix(d.SurveyBaseURL, "http://") {
		bad("desk.survey_base_url", "%q is not an http(s) URL", d.SurveyBaseURL)
	}
}

// cutLast splits "a/b/c" into "a/b" and "c".
func cutLast(p string) (string, string, bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}
