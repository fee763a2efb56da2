package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTicketCommands runs the common desk actions through the CLI against a
// served instance: an agent opens, takes, works, resolves and closes a
// ticket; a supervisor reads the report.
func TestTicketCommands(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	creds := t.TempDir()
	step := func(want string, args ...string) string {
		t.Helper()
		out, err := s.client(t, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("certcenter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	step("credential", "staff", "add", "amy", "--name", "Amy Agent", "--role", "service_agent", "--out", creds)
	step("credential", "staff", "add", "sue", "--name", "Sue Supervisor", "--role", "supervisor", "--out", creds)
	amy := []string{"--cert", filepath.Join(creds, "amy.crt"), "--key", filepath.Join(creds, "amy.key")}
	sue := []string{"--cert", filepath.Join(creds, "sue.crt"), "--key", filepath.Join(creds, "sue.key")}

	out := step(": new [certificate_use/signing_fails", append([]string{"ticket", "create", "--category", "certificate_use/signing_fails",
		"--subject", "签名失败", "--name", "Zhang San", "--phone", "123"}, amy...)...)
	id := regexp.MustCompile(`ticket (T\d+)`).FindStringSubmatch(out)[1]
	if out, err := s.client(t, append([]string{"ticket", "create", "--category", "no/such", "--subject", "x", "--name", "n", "--phone", "1"}, amy...)...); err == nil || !strings.Contains(out, "category tree") {
		t.Fatalf("unknown category: %v\n%s", err, out)
	}
	step("in_progress", append([]string{"ticket", "take", id}, amy...)...)
	step(id, append([]string{"ticket", "list", "--state", "in_progress"}, amy...)...)
	step("in_progress", append([]string{"ticket", "work", id, "--symptom", "error 0x12", "--diagnosis", "driver ok", "--solution", "update middleware"}, amy...)...)
	step("resolved", append([]string{"ticket", "resolve", id}, amy...)...)
	out = step("survey link", append([]string{"ticket", "close", id}, amy...)...)
	if !strings.Contains(out, "/api/v1/surveys/") {
		t.Fatalf("close printed no survey link:\n%s", out)
	}
	step("closed", append([]string{"ticket", "survey", id, "--score", "4", "--channel", "phone"}, amy...)...)
	step("sla,met_percent", append([]string{"ticket", "report", "--format", "csv"}, sue...)...)
	if out, err := s.client(t, append([]string{"ticket", "report"}, amy...)...); err == nil || !strings.Contains(out, "HTTP 403") {
		t.Fatalf("report by an agent: %v\n%s", err, out)
	}
}
