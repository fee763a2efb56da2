package ra

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLeaderApproval: the application carries the approving leader's name
// and date and optionally a scanned document (Art. 8.2); each request
// records them and shows them. Bad approvals are refused; with
// ra.require_leader_approval an application without one is refused.
func TestLeaderApproval(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }
	scan := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4\n% scanned approval\n"))
	item := func(e *execEnv) string { return e.item("Led", 0) }
	for _, tc := range []struct {
		name    string
		require bool
		leader  string
		wantErr string
	}{
		{"ok/name and date", false, `{"name":"Director Wang","date":"2026-02-27"}`, ""},
		{"ok/with a scanned document", true, `{"name":"Director Wang","date":"2026-03-02","document":"` + scan + `"}`, ""},
		{"ok/none when not required", false, ``, ""},
		{"fail/required but missing", true, ``, "leader approval"},
		{"fail/no name", false, `{"date":"2026-02-27"}`, "leader.name"},
		{"fail/bad date", false, `{"name":"W","date":"27.02.2026"}`, "leader.date"},
		{"fail/date in the future", false, `{"name":"W","date":"2026-03-10"}`, "in the future"},
		{"fail/document not base64", false, `{"name":"W","date":"2026-02-27","document":"%%%"}`, "base64"},
		{"fail/document not a scan", false, `{"name":"W","date":"2026-02-27","document":"` + base64.StdEncoding.EncodeToString([]byte("<html>")) + `"}`, "PDF, JPEG or PNG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExecEnv(t, clock, nil, func(o *Options) { o.Config.RequireLeaderApproval = tc.require })
			leader := ""
			if tc.leader != "" {
				leader = `,"leader":` + tc.leader
			}
			b := []byte(`{"org":"o"` + leader + `,"items":[` + item(e) + `]}`)
			rq, err := e.newRequestFrom(b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("submission = %v; want refused mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, _ := json.Marshal(e.r.view(e.read(rq.ID)))
			if tc.leader == "" {
				if strings.Contains(string(v), `"leader"`) {
					t.Errorf("request shows a leader approval nobody gave: %s", v)
				}
				return
			}
			if !strings.Contains(string(v), `"leader":{"name":"Director Wang","date":"2026-`) {
				t.Errorf("request JSON %s does not show the leader's approval", v)
			}
			if strings.Contains(tc.leader, "document") && !strings.Contains(string(v), `"document_sha256":"`) {
				t.Errorf("request JSON %s does not identify the scanned document", v)
			}
		})
	}
}
