package ra

import (
	"slices"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// This file is the RA's policy: the approval levels a request passes, who
// decides each, how many approvals each needs, and the state that follows.
// Submission (Submit), decisions (Decide) and execution (Execute) all read
// it; nothing else in the package decides who may act or what comes next.
// Adding an approval level is a row in levels (and its state constant) and
// its rows in steps_test.go.

// States of a request. A request waits in the state named by its current
// approval level; issuing and revoking are the short moments between the
// last approval and the Authority's commit, which Repair finishes after a
// crash.
const (
	StateSuperior  = "superior_review"
	StateCAReview  = "ca_review"
	StateIssuing   = "issuing"
	StateIssued    = "issued"
	StateDelivered = "delivered"
	StateRevoking  = "revoking"
	StateRevoked   = "revoked"
	StateRejected  = "rejected"
	StateFailed    = "failed"
	// A directory access request (KindLDAPAccess) is granting between its
	// last approval and the account's creation, then granted.
	StateGranting = "granting"
	StateGranted  = "granted"
	// A USBKey unlock (KindTokenUnlock) is authorising between its
	// approval and the authorisation's record, authorised until the
	// requester fetches it (once), then unlocked.
	StateAuthorising = "authorising"
	StateAuthorised  = "authorised"
	StateUnlocked    = "unlocked"
	// A USBKey replacement (KindTokenReplace) waits for a support
	// engineer's confirmation (SPEC Art. 25), then is replacing until the
	// old token's certificates are revoked, the new one issued and the
	// inventory moved.
	StateSupport   = "support_review"
	StateReplacing = "replacing"
	StateReplaced  = "replaced"
)

// party is who may decide a level: staff holding one of roles (an
// administrator always may), or a certificate administrator of the
// superior organisation of the request's.
type party struct {
	roles         []string
	superiorAdmin bool
	// refusal says who decides, for the 403 of anyone else.
	refusal string
	// exact: only staff holding one of roles, not an administrator
	// standing in (M of N recovery officers must be N people).
	exact bool
}

// level is one approval level.
type level struct {
	// state is the state a request waits in at this level.
	state string
	// kinds are the request kinds that pass through it.
	kinds []string
	// applies says whether a request of org passes through it; nil: all.
	applies func(org *store.Org) bool
	who     party
	// need is the number of distinct approvers it takes, from the config.
	need func(config.RA) int
	// ca marks a level in the CA's hands: the CA's working-day deadline
	// runs from the moment a request first reaches one (SPEC Art. 9).
	ca bool
}

// levels are the approval levels, in the order a request passes them.
var levels = []level{
	{
		state: StateSuperior, kinds: []string{KindIssue},
		applies: func(o *store.Org) bool { return o.MultiLevel && o.ParentID != "" },
		who:     party{superiorAdmin: true, refusal: "only a certificate administrator of the superior organisation approves at " + StateSuperior},
		need:    func(c config.RA) int { return c.SuperiorApprovals },
	},
	{
		state: StateCAReview, kinds: []string{KindIssue, KindRenew}, ca: true,
		who:  party{roles: []string{httpapi.RoleRAOfficer}, refusal: "only an RA officer reviews for the CA"},
		need: func(c config.RA) int { return c.CAApprovals },
	},
	{
		state: StateCAReview, kinds: []string{KindRevoke}, ca: true,
		who:  party{roles: []string{httpapi.RoleCAOperator}, refusal: "only a CA operator executes a revocation"},
		need: func(config.RA) int { return 1 },
	},
	// Directory access (SPEC Art. 14) is approved by the managing
	// organisation: the superior's certificate administrator, or an RA
	// officer for an organisation with no superior.
	{
		state: StateSuperior, kinds: []string{KindLDAPAccess},
		applies: func(o *store.Org) bool { return o.ParentID != "" },
		who:     party{superiorAdmin: true, refusal: "only a certificate administrator of the superior organisation approves directory access"},
		need:    func(config.RA) int { return 1 },
	},
	{
		state: StateCAReview, kinds: []string{KindLDAPAccess}, ca: true,
		applies: func(o *store.Org) bool { return o.ParentID == "" },
		who:     party{roles: []string{httpapi.RoleRAOfficer}, refusal: "only an RA officer approves directory access for an organisation without a superior"},
		need:    func(config.RA) int { return 1 },
	},
	// Encryption certificates and key recovery (SPEC Art. 13, escrow.go).
	{
		state: StateCAReview, kinds: []string{KindEncryptionCert}, ca: true,
		who:  party{roles: []string{httpapi.RoleRAOfficer}, refusal: "only an RA officer approves an encryption certificate"},
		need: func(c config.RA) int { return c.CAApprovals },
	},
	{
		state: StateCAReview, kinds: []string{KindKeyRecovery}, ca: true,
		who:  party{roles: []string{httpapi.RoleRAOfficer}, refusal: "only an RA officer approves a key recovery"},
		need: func(config.RA) int { return 1 },
	},
	{
		state: StateRecoveryReview, kinds: []string{KindJudicialRecovery}, ca: true,
		who:  party{roles: []string{httpapi.RoleRecoveryOfficer}, exact: true, refusal: "only recovery officers approve a judicial recovery"},
		need: func(c config.RA) int { return c.Escrow.JudicialApprovals },
	},
	// USBKey unlock (SPEC Art. 12) and replacement (Art. 25, confirmed by
	// a support engineer); ra/token.go.
	{
		state: StateCAReview, kinds: []string{KindTokenUnlock}, ca: true,
		who:  party{roles: []string{httpapi.RoleRAOfficer}, refusal: "only an RA officer authorises a USBKey unlock"},
		need: func(config.RA) int { return 1 },
	},
	{
		state: StateSupport, kinds: []string{KindTokenReplace}, ca: true,
		who:  party{roles: []string{httpapi.RoleSupportEngineer}, refusal: "only a support engineer confirms a USBKey replacement"},
		need: func(config.RA) int { return 1 },
	},
}

// executes is the state a kind of request moves to after its last
// approval; the Authority then carries it out (Execute).
var executes = map[string]string{KindIssue: StateIssuing, KindRenew: StateIssuing, KindRevoke: StateRevoking, KindLDAPAccess: StateGranting,
	KindEncryptionCert: StateEscrowing, KindKeyRecovery: StateRecovering, KindJudicialRecovery: StateRecovering,
	KindTokenUnlock: StateAuthorising, KindTokenReplace: StateReplacing}

// outcomes are the moves after approval: execution succeeds or fails, and
// an issued certificate is delivered.
var outcomes = map[string][]string{
	StateIssuing:  {StateIssued, StateFailed},
	StateRevoking: {StateRevoked, StateFailed},
	StateIssued:   {StateDelivered},
	StateGranting: {StateGranted, StateFailed},
	// An encryption certificate is issued (and its key delivered, as
	// delivered); a recovered key is delivered through its link.
	StateEscrowing:  {StateIssued, StateFailed},
	StateRecovering: {StateRecovered, StateFailed},
	StateRecovered:  {StateDelivered},
	// An unlock authorisation is fetched once: authorised, then unlocked.
	StateAuthorising: {StateAuthorised, StateFailed},
	StateAuthorised:  {StateUnlocked},
	StateReplacing:   {StateReplaced, StateFailed},
}

// immediate says who may have a request of a kind executed at submission,
// without an approval, when the policy allows it for its cause (a revocation
// for a lost key, ra.auto_revoke_causes): the organisation's certificate
// administrator, whose application is signed, or a CA operator, the admin
// revoke endpoint's rule. Anyone else's request waits for its levels.
var immediate = map[string]party{KindRevoke: {roles: []string{httpapi.RoleCAOperator}}}

// levelFor returns the level a request of kind waits at in state.
func levelFor(state, kind string) (level, bool) {
	for _, l := range levels {
		if l.state == state && slices.Contains(l.kinds, kind) {
			return l, true
		}
	}
	return level{}, false
}

// stepsFor lists the approval steps a request of kind from org passes, with
// the approvals each needs under cfg; they are stored with the request, so a
// change of config does not change requests already submitted.
func stepsFor(cfg config.RA, kind string, org *store.Org) []store.RAStep {
	var steps []store.RAStep
	for _, l := range levels {
		if slices.Contains(l.kinds, kind) && (l.applies == nil || l.applies(org)) {
			steps = append(steps, store.RAStep{Name: l.state, Need: l.need(cfg)})
		}
	}
	return steps
}

// isReview says whether a request in state waits for a decision.
func isReview(state string) bool {
	return slices.ContainsFunc(levels, func(l level) bool { return l.state == state })
}

// reachesCA says whether a request of kind in state is in the CA's hands.
func reachesCA(state, kind string) bool {
	if l, ok := levelFor(state, kind); ok {
		return l.ca
	}
	return state == executes[kind]
}

// isExecution says whether a request in state is approved and waits for
// the Authority.
func isExecution(state string) bool {
	for _, s := range executes {
		if s == state {
			return true
		}
	}
	return false
}

// isFinal says whether a request in state is closed.
func isFinal(state string) bool {
	switch state {
	case StateIssued, StateRevoked, StateRejected, StateFailed, StateGranted:
		return true
	case StateRecovered, StateAuthorised, StateReplaced:
		return true
	}
	return false
}

// canMove says whether a request of kind may move from one state to
// another: at submission to one of its levels (or straight to execution
// where immediate allows), from a level to itself (an approval short of
// the level's need), to a later level, to execution or to rejection, and
// after approval as outcomes says.
func canMove(kind, from, to string) bool {
	var mine []string
	for _, l := range levels {
		if slices.Contains(l.kinds, kind) {
			mine = append(mine, l.state)
		}
	}
	switch i := slices.Index(mine, from); {
	case from == "":
		_, now := immediate[kind]
		return slices.Contains(mine, to) || now && to == executes[kind]
	case i >= 0:
		return slices.Contains(mine[i:], to) || to == executes[kind] || to == StateRejected
	}
	return slices.Contains(outcomes[from], to)
}

// mayDecide checks that c may decide the current step of rq, whose
// organisation is org: the level's party, not the submitter, and each
// approver once.
func mayDecide(c *caller, rq *store.RARequest, org *store.Org) error {
	l, ok := levelFor(rq.State, rq.Kind)
	if !ok {
		return httpapi.Conflict("request %s is %s; it is not waiting for a decision", rq.ID, rq.State)
	}
	if !l.who.includes(c, org) {
		if l.who.superiorAdmin {
			return httpapi.Forbidden("only a certificate administrator of the superior organisation %s approves at %s", org.ParentID, rq.State)
		}
		return httpapi.Forbidden("%s", l.who.refusal)
	}
	if c.ID() == rq.SubmittedBy {
		return httpapi.Forbidden("the submitter of request %s may not decide it", rq.ID)
	}
	for _, s := range rq.Steps {
		for _, a := range s.Approvals {
			if a.Actor == c.ID() {
				return httpapi.Conflict("%s has already approved request %s; each approver acts once", c.ID(), rq.ID)
			}
		}
	}
	return nil
}

func (p party) includes(c *caller, org *store.Org) bool {
	if p.superiorAdmin && c.Admin != nil && org.ParentID != "" && c.Admin.OrgID == org.ParentID {
		return true
	}
	if p.exact {
		return c.Staff != nil && slices.Contains(p.roles, c.Staff.Role)
	}
	return len(p.roles) > 0 && c.HasRole(p.roles...)
}

// mayExecuteAtOnce says whether c's request of kind may skip its levels
// (see immediate).
func mayExecuteAtOnce(c *caller, kind string) bool {
	p, ok := immediate[kind]
	return ok && (c.Admin != nil || c.HasRole(p.roles...))
}

// approved records an approval of rq's current step by c and returns the
// state it moves to: the same while the step needs more approvals, then
// the next step's, then execution.
func approved(rq *store.RARequest, a store.RAAction) string {
	step := &rq.Steps[rq.Step]
	step.Approvals = append(step.Approvals, a)
	if len(step.Approvals) < step.Need {
		return rq.State
	}
	rq.Step++
	if rq.Step < len(rq.Steps) {
		return rq.Steps[rq.Step].Name
	}
	return executes[rq.Kind]
}
