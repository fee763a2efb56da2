package config

import (
	"strings"
	"testing"
)

// TestDeskValidation: every bad desk value is refused with its key named.
func TestDeskValidation(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name, key string
		set       func(d *Desk)
	}{
		{"office hours backwards", "desk.office_hours", func(d *Desk) { d.OfficeHours = "17:00-09:00" }},
		{"office hours garbage", "desk.office_hours", func(d *Desk) { d.OfficeHours = "nine to five" }},
		{"no hand-over", "desk.handover", func(d *Desk) { d.Handover = 0 }},
		{"resolution before response", "desk.targets.major", func(d *Desk) { d.Targets.Major.Resolution = Duration(1) }},
		{"negative target", "desk.targets.serious.response", func(d *Desk) { d.Targets.Serious.Response = -1 }},
		{"tiny attachments", "desk.attachment_max_bytes", func(d *Desk) { d.AttachmentMaxBytes = 10 }},
		{"type with parameters", "desk.attachment_types", func(d *Desk) { d.AttachmentTypes = []string{"text/plain; charset=utf-8"} }},
		{"no categories", "desk.categories", func(d *Desk) { d.Categories = nil; d.ReplacementCategory = "" }},
		{"bad category path", "desk.categories", func(d *Desk) { d.Categories = []string{"a//b"}; d.ReplacementCategory = "" }},
		{"replacement category unknown", "desk.replacement_category", func(d *Desk) { d.ReplacementCategory = "token_use/nothing" }},
		{"survey URL", "desk.survey_base_url", func(d *Desk) { d.SurveyBaseURL = "ftp://x" }},
	} {
		t.Run("fail/"+c.name, func(t *testing.T) {
			cfg := Default()
			c.set(&cfg.Desk)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("Validate = %v; want an error naming %s", err, c.key)
			}
		})
	}
	cfg, err := Parse([]byte("desk:\n  office_hours: \"08:30-17:30\"\n  targets:\n    general: {response: 2h, resolution: 24h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Desk.OfficeHours != "08:30-17:30" || cfg.Desk.Targets.General.Response.D().Hours() != 2 || cfg.Desk.Targets.Major.Response.D().Minutes() != 30 {
		t.Fatalf("parsed desk = %+v", cfg.Desk)
	}
}
