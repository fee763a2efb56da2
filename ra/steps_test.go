package ra

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// The policy table (steps.go) walked in full: every state, kind, action and
// actor. Adding an approval level adds its rows to decisionPolicy below;
// TestStepsTableIsCovered fails until it does.

var stepActors = map[string]*caller{
	"superior-admin":   {Admin: &store.CertAdmin{ID: "sup", OrgID: "parent"}},
	"own-admin":        {Admin: &store.CertAdmin{ID: "own", OrgID: "child"}},
	"other-admin":      {Admin: &store.CertAdmin{ID: "oth", OrgID: "other"}},
	"staff-admin":      {Staff: &store.Staff{ID: "root", Role: httpapi.RoleAdmin}},
	"ra-officer":       {Staff: &store.Staff{ID: "off", Role: httpapi.RoleRAOfficer}},
	"ca-operator":      {Staff: &store.Staff{ID: "op", Role: httpapi.RoleCAOperator}},
	"service-agent":    {Staff: &store.Staff{ID: "agent", Role: httpapi.RoleServiceAgent}},
	"auditor":          {Staff: &store.Staff{ID: "aud", Role: httpapi.RoleAuditor}},
	"metrics":          {Staff: &store.Staff{ID: "scrape", Role: httpapi.RoleMetrics}},
	"recovery-officer": {Staff: &store.Staff{ID: "rec", Role: httpapi.RoleRecoveryOfficer}},
	"support":          {Staff: &store.Staff{ID: "eng", Role: httpapi.RoleSupportEngineer}},
}

var allStates = []string{StateSuperior, StateCAReview, StateIssuing, StateIssued, StateDelivered, StateRevoking, StateRevoked, StateRejected, StateFailed, StateGranting, StateGranted,
	StateEscrowing, StateRecoveryReview, StateRecovering, StateRecovered,
	StateAuthorising, StateAuthorised, StateUnlocked, StateSupport, StateReplacing, StateReplaced}

var allKinds = []string{KindIssue, KindRenew, KindRevoke, KindLDAPAccess,
	KindEncryptionCert, KindKeyRecovery, KindJudicialRecovery, KindTokenUnlock, KindTokenReplace}

// decisionPolicy is who decides each (kind, state) and where the last
// approval of it leads; every other (kind, state) takes no decision.
var decisionPolicy = []struct {
	kind, state string
	deciders    []string
	next        string
}{
	{KindIssue, StateSuperior, []string{"superior-admin"}, StateCAReview},
	{KindIssue, StateCAReview, []string{"ra-officer", "staff-admin"}, StateIssuing},
	{KindRenew, StateCAReview, []string{"ra-officer", "staff-admin"}, StateIssuing},
	{KindRevoke, StateCAReview, []string{"ca-operator", "staff-admin"}, StateRevoking},
	{KindLDAPAccess, StateSuperior, []string{"superior-admin"}, StateGranting},
	{KindLDAPAccess, StateCAReview, []string{"ra-officer", "staff-admin"}, StateGranting},
	{KindEncryptionCert, StateCAReview, []string{"ra-officer", "staff-admin"}, StateEscrowing},
	{KindKeyRecovery, StateCAReview, []string{"ra-officer", "staff-admin"}, StateRecovering},
	// M of N: the first of ra.escrow.judicial_approvals (2) keeps it there;
	// an administrator does not stand in for a recovery officer.
	{KindJudicialRecovery, StateRecoveryReview, []string{"recovery-officer"}, StateRecoveryReview},
	{KindTokenUnlock, StateCAReview, []string{"ra-officer", "staff-admin"}, StateAuthorising},
	{KindTokenReplace, StateSupport, []string{"support", "staff-admin"}, StateReplacing},
}

// multiOrg is a multi-level organisation: its issue requests pass every level.
var multiOrg = &store.Org{ID: "child", Name: "Child", ParentID: "parent", MultiLevel: true}

// requestAt is a request of kind from multiOrg waiting in state, with the
// steps stepsFor gives it under cfg and its step index at state.
func requestAt(cfg config.RA, kind, state string) *store.RARequest {
	rq := &store.RARequest{ID: "req-1", Kind: kind, State: state, OrgID: multiOrg.ID, SubmittedBy: "admin:submitter", Open: true}
	rq.Steps = stepsFor(cfg, kind, multiOrg)
	if kind == KindLDAPAccess && state == StateCAReview {
		// an organisation without a superior: its RA officer level
		rq.Steps = stepsFor(cfg, kind, &store.Org{ID: "plain"})
	}
	rq.Step = len(rq.Steps)
	for i, s := range rq.Steps {
		if s.Name == state {
			rq.Step = i
		}
	}
	return rq
}

func TestStepsDecisions(t *testing.T) {
	cfg := config.Default().RA
	for _, kind := range allKinds {
		for _, state := range allStates {
			i := slices.IndexFunc(decisionPolicy, func(p struct {
				kind, state string
				deciders    []string
				next        string
			}) bool {
				return p.kind == kind && p.state == state
			})
			for name, who := range stepActors {
				for _, approve := range []bool{true, false} {
					action := "reject"
					if approve {
						action = "approve"
					}
					t.Run(kind+"/"+state+"/"+action+"/"+name, func(t *testing.T) {
						rq := requestAt(cfg, kind, state)
						err := mayDecide(who, rq, multiOrg)
						var ae *httpapi.Error
						switch {
						case i < 0:
							if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
								t.Fatalf("mayDecide = %v; want a 409: nobody decides a %s request in %s", err, kind, state)
							}
							return
						case !slices.Contains(decisionPolicy[i].deciders, name):
							if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
								t.Fatalf("mayDecide = %v; want a 403: %s does not decide a %s request in %s", err, name, kind, state)
							}
							return
						case err != nil:
							t.Fatalf("mayDecide = %v; want %s allowed", err, name)
						}
						next := StateRejected
						if approve {
							next = approved(rq, store.RAAction{Actor: who.ID(), Action: "approve", At: time.Now()})
							if next != decisionPolicy[i].next {
								t.Fatalf("approval moves to %s, want %s", next, decisionPolicy[i].next)
							}
						}
						if !canMove(kind, state, next) {
							t.Fatalf("canMove(%s, %s, %s) = false; the machine would refuse its own decision", kind, state, next)
						}
					})
				}
			}
		}
	}
}

// TestStepsTableIsCovered fails when a level of steps.go has no row in
// decisionPolicy (or a row names a level that does not exist).
func TestStepsTableIsCovered(t *testing.T) {
	var table, tested []string
	for _, l := range levels {
		for _, k := range l.kinds {
			table = append(table, k+"/"+l.state)
		}
	}
	for _, p := range decisionPolicy {
		tested = append(tested, p.kind+"/"+p.state)
	}
	slices.Sort(table)
	slices.Sort(tested)
	if !slices.Equal(table, tested) {
		t.Fatalf("levels %v, tested %v: add the new level's rows to decisionPolicy", table, tested)
	}
}

func TestStepsApprovalsNeeded(t *testing.T) {
	cfg := config.Default().RA
	cfg.SuperiorApprovals, cfg.CAApprovals = 2, 3
	plain := &store.Org{ID: "plain", Name: "Plain"}
	for _, tc := range []struct {
		name string
		kind string
		org  *store.Org
		want []store.RAStep
	}{
		{"ok/issue multi-level", KindIssue, multiOrg, []store.RAStep{{Name: StateSuperior, Need: 2}, {Name: StateCAReview, Need: 3}}},
		{"ok/issue single-level", KindIssue, plain, []store.RAStep{{Name: StateCAReview, Need: 3}}},
		{"ok/renew skips the superior", KindRenew, multiOrg, []store.RAStep{{Name: StateCAReview, Need: 3}}},
		{"ok/revoke needs one operator", KindRevoke, multiOrg, []store.RAStep{{Name: StateCAReview, Need: 1}}},
		{"ok/directory access by the superior", KindLDAPAccess, multiOrg, []store.RAStep{{Name: StateSuperior, Need: 1}}},
		{"ok/directory access without a superior by an RA officer", KindLDAPAccess, plain, []store.RAStep{{Name: StateCAReview, Need: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := stepsFor(cfg, tc.kind, tc.org)
			if len(got) != len(tc.want) {
				t.Fatalf("stepsFor = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || got[i].Need != tc.want[i].Need {
					t.Fatalf("stepsFor = %+v, want %+v", got, tc.want)
				}
			}
		})
	}

	// A step needing three approvals stays put for two, refuses the same
	// approver twice and the submitter, and moves on the third.
	rq := requestAt(cfg, KindIssue, StateCAReview)
	officers := []*caller{
		{Staff: &store.Staff{ID: "o1", Role: httpapi.RoleRAOfficer}},
		{Staff: &store.Staff{ID: "o2", Role: httpapi.RoleRAOfficer}},
		{Staff: &store.Staff{ID: "o3", Role: httpapi.RoleRAOfficer}},
	}
	for i, o := range officers {
		if err := mayDecide(o, rq, multiOrg); err != nil {
			t.Fatalf("approval %d: %v", i+1, err)
		}
		next := approved(rq, store.RAAction{Actor: o.ID(), Action: "approve"})
		want := StateCAReview
		if i == 2 {
			want = StateIssuing
		}
		if next != want {
			t.Fatalf("approval %d moves to %s, want %s", i+1, next, want)
		}
		rq.State = next
		if i == 0 {
			var ae *httpapi.Error
			if err := mayDecide(o, rq, multiOrg); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
				t.Fatalf("second approval by %s = %v; want a 409", o.ID(), err)
			}
			sub := &caller{Staff: &store.Staff{ID: "sub", Role: httpapi.RoleRAOfficer}}
			rq.SubmittedBy = sub.ID()
			if err := mayDecide(sub, rq, multiOrg); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
				t.Fatalf("approval by the submitter = %v; want a 403", err)
			}
		}
	}
}

func TestStepsMoves(t *testing.T) {
	for _, tc := range []struct {
		kind, from, to string
		ok             bool
	}{
		{KindIssue, "", StateSuperior, true},
		{KindIssue, "", StateCAReview, true},
		{KindIssue, "", StateIssuing, false},
		{KindRevoke, "", StateRevoking, true},
		{KindRevoke, "", StateSuperior, false},
		{KindIssue, StateSuperior, StateSuperior, true},
		{KindIssue, StateSuperior, StateCAReview, true},
		{KindIssue, StateSuperior, StateRejected, true},
		{KindIssue, StateCAReview, StateSuperior, false},
		{KindIssue, StateCAReview, StateRevoking, false},
		{KindRevoke, StateCAReview, StateIssuing, false},
		{KindIssue, StateIssuing, StateIssued, true},
		{KindIssue, StateIssuing, StateFailed, true},
		{KindIssue, StateIssuing, StateRejected, false},
		{KindRevoke, StateRevoking, StateRevoked, true},
		{KindIssue, StateIssued, StateDelivered, true},
		{KindIssue, StateDelivered, StateIssued, false},
		{KindIssue, StateRejected, StateCAReview, false},
		{KindIssue, StateFailed, StateIssuing, false},
		{KindRevoke, StateRevoked, StateRevoking, false},
		{KindTokenUnlock, "", StateCAReview, true},
		{KindTokenUnlock, StateAuthorising, StateAuthorised, true},
		{KindTokenUnlock, StateAuthorised, StateUnlocked, true},
		{KindTokenUnlock, StateUnlocked, StateAuthorised, false},
		{KindTokenReplace, "", StateSupport, true},
		{KindTokenReplace, "", StateReplacing, false},
		{KindTokenReplace, StateSupport, StateReplacing, true},
		{KindTokenReplace, StateReplacing, StateReplaced, true},
	} {
		if got := canMove(tc.kind, tc.from, tc.to); got != tc.ok {
			t.Errorf("canMove(%s, %q, %s) = %v, want %v", tc.kind, tc.from, tc.to, got, tc.ok)
		}
	}
}

// TestStepsExecutedAtOnce: who may have a request skip its levels when the
// policy executes its cause at once.
func TestStepsExecutedAtOnce(t *testing.T) {
	may := map[string][]string{KindRevoke: {"superior-admin", "own-admin", "other-admin", "staff-admin", "ca-operator"}}
	for _, kind := range allKinds {
		for name, who := range stepActors {
			if got, want := mayExecuteAtOnce(who, kind), slices.Contains(may[kind], name); got != want {
				t.Errorf("mayExecuteAtOnce(%s, %s) = %v, want %v", name, kind, got, want)
			}
		}
	}
}
