package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// ticketView is what the ticket commands print of a ticket.
type ticketView struct {
	ID        string `json:"id"`
	Channel   string `json:"channel"`
	Category  string `json:"category"`
	Class     string `json:"class"`
	Emergency bool   `json:"emergency"`
	Subject   string `json:"subject"`
	State     string `json:"state"`
	Group     string `json:"group"`
	Assignee  string `json:"assignee"`
	SLA       struct {
		Calendar    string    `json:"calendar"`
		ResponseDue time.Time `json:"response_due"`
		ResolveDue  time.Time `json:"resolve_due"`
		HandoverDue time.Time `json:"handover_due"`
		Breaches    []struct {
			Kind string `json:"kind"`
		} `json:"breaches"`
	} `json:"sla"`
	Duplicates       []string `json:"duplicates"`
	Warning          string   `json:"warning"`
	ReplacementState string   `json:"replacement_state"`
	SurveyLink       *struct {
		URL string `json:"url"`
	} `json:"survey_link"`
}

func printTicket(t ticketView) {
	fmt.Printf("ticket %s: %s [%s, %s%s] %s\n", t.ID, t.State, t.Category, t.Class, map[bool]string{true: ", emergency"}[t.Emergency], t.Subject)
	fmt.Printf("  group %s, assignee %q, calendar %s\n", t.Group, t.Assignee, t.SLA.Calendar)
	if !t.SLA.ResponseDue.IsZero() {
		fmt.Printf("  response due %s, resolution due %s\n", t.SLA.ResponseDue.Format(time.RFC3339), t.SLA.ResolveDue.Format(time.RFC3339))
	}
	if !t.SLA.HandoverDue.IsZero() {
		fmt.Printf("  hand-over to %s due %s\n", t.Group, t.SLA.HandoverDue.Format(time.RFC3339))
	}
	for _, b := range t.SLA.Breaches {
		fmt.Printf("  breach: %s\n", b.Kind)
	}
	if t.Warning != "" {
		fmt.Printf("  warning: %s %v\n", t.Warning, t.Duplicates)
	}
	if t.ReplacementState != "" {
		fmt.Printf("  USBKey replacement request: %s\n", t.ReplacementState)
	}
	if t.SurveyLink != nil {
		fmt.Printf("  survey link (give it to the customer; shown once): %s\n", t.SurveyLink.URL)
	}
}

func ticketCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "ticket", Short: "Service desk: open, list, show, take, escalate, resolve, close, merge tickets; reports"}
	c.register(cmd)
	path := func(id string, rest ...string) string {
		return "/api/v1/tickets/" + url.PathEscape(id) + strings.Join(rest, "")
	}
	post := func(p string, body any) error {
		var t ticketView
		if err := c.do("POST", p, body, &t); err != nil {
			return err
		}
		printTicket(t)
		return nil
	}

	var cr struct {
		channel, category, class, subject, description, name, phone, email, org, subscriber, join string
		emergency                                                                                 bool
		certs, tokens                                                                             []string
	}
	create := &cobra.Command{
		Use: "create --category PATH --subject TEXT --name REQUESTER (--phone|--email|--org|--subscriber)", Short: "Open a ticket (or --join an open one)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind := "person"
			if cr.org != "" && cr.subscriber == "" {
				kind = "organisation"
			}
			body := map[string]any{"channel": cr.channel, "category": cr.category, "class": cr.class, "emergency": cr.emergency,
				"subject": cr.subject, "description": cr.description,
				"requester": map[string]string{"kind": kind, "name": cr.name, "phone": cr.phone, "email": cr.email, "org": cr.org, "subscriber": cr.subscriber},
				"links":     map[string][]string{"certificates": cr.certs, "tokens": cr.tokens}}
			if cr.join != "" {
				body = map[string]any{"join": cr.join, "channel": cr.channel, "description": cr.description}
			}
			return post("/api/v1/tickets", body)
		},
	}
	f := create.Flags()
	f.StringVar(&cr.channel, "channel", "hotline", "hotline, fax, web, email, instant_message, on_site, walk_in")
	f.StringVar(&cr.category, "category", "", "a path of desk.categories, e.g. certificate_use/signing_fails")
	f.StringVar(&cr.class, "class", "general", "general, serious or major")
	f.BoolVar(&cr.emergency, "emergency", false, "7x24 clocks")
	f.StringVar(&cr.subject, "subject", "", "one line")
	f.StringVar(&cr.description, "description", "", "what the customer says")
	f.StringVar(&cr.name, "name", "", "requester's name")
	f.StringVar(&cr.phone, "phone", "", "requester's phone")
	f.StringVar(&cr.email, "email", "", "requester's e-mail")
	f.StringVar(&cr.org, "org", "", "requester's organisation ID")
	f.StringVar(&cr.subscriber, "subscriber", "", "requester's subscriber ID")
	f.StringSliceVar(&cr.certs, "link-cert", nil, "linked certificate serial (repeatable)")
	f.StringSliceVar(&cr.tokens, "link-token", nil, "linked token (repeatable)")
	f.StringVar(&cr.join, "join", "", "add this contact to the open ticket ID instead")

	var state, group, category string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List tickets", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			for k, v := range map[string]string{"state": state, "group": group, "category": category} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var page struct {
				Items []ticketView `json:"items"`
				Next  string       `json:"next"`
			}
			if err := c.do("GET", "/api/v1/tickets?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tGROUP\tCLASS\tCATEGORY\tSUBJECT")
			for _, t := range page.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.State, t.Group, t.Class, t.Category, t.Subject)
			}
			if page.Next != "" {
				fmt.Fprintf(tw, "(more: --after %s)\n", page.Next)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "only this state")
	list.Flags().StringVar(&group, "group", "", "only this group")
	list.Flags().StringVar(&category, "category", "", "only this category or its children")
	list.Flags().IntVar(&limit, "limit", 100, "page size")

	show := &cobra.Command{
		Use: "show ID", Short: "Show a ticket (--json for the whole record)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			var raw json.RawMessage
			if err := c.do("GET", path(args[0]), nil, &raw); err != nil {
				return err
			}
			if asJSON {
				fmt.Println(string(raw))
				return nil
			}
			var t ticketView
			if err := json.Unmarshal(raw, &t); err != nil {
				return err
			}
			printTicket(t)
			return nil
		},
	}
	show.Flags().Bool("json", false, "print the whole record")

	var note string
	move := func(use, short, to string) *cobra.Command {
		return &cobra.Command{Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return post(path(args[0], "/transition"), map[string]string{"to": to, "note": note})
			}}
	}
	take := move("take", "Take a ticket of your group (in_progress; ends a pending hand-over)", "in_progress")
	wait := move("wait", "Wait for the customer (pauses the clocks)", "waiting_customer")
	resolve := move("resolve", "Resolve (the work log must hold a suggested solution)", "resolved")
	closeCmd := move("close", "Close; prints the satisfaction survey's one-time link", "closed")
	reopen := move("reopen", "Reopen", "reopened")
	for _, m := range []*cobra.Command{take, wait, resolve, closeCmd, reopen} {
		m.Flags().StringVar(&note, "note", "", "recorded in the history")
	}

	var assignee string
	assign := &cobra.Command{
		Use: "assign ID GROUP", Short: "Give a ticket to hotline_agent, hotline_engineer or technical_centre (and --to a person)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(path(args[0], "/assign"), map[string]string{"group": args[1], "assignee": assignee, "note": note})
		},
	}
	assign.Flags().StringVar(&assignee, "to", "", "staff ID")
	assign.Flags().StringVar(&note, "note", "", "recorded in the history")

	var w struct {
		product, symptom, solution string
		diagnosis                  []string
	}
	work := &cobra.Command{
		Use: "work ID", Short: "Add to the work log (SPEC Art. 22): --product, --symptom, --diagnosis (repeatable), --solution, --note", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(path(args[0], "/work"), map[string]any{"product": w.product, "symptom": w.symptom, "diagnosis": w.diagnosis, "solution": w.solution, "note": note})
		},
	}
	work.Flags().StringVar(&w.product, "product", "", "product information")
	work.Flags().StringVar(&w.symptom, "symptom", "", "the symptom")
	work.Flags().StringSliceVar(&w.diagnosis, "diagnosis", nil, "a diagnosis step (repeatable)")
	work.Flags().StringVar(&w.solution, "solution", "", "the suggested solution")
	work.Flags().StringVar(&note, "note", "", "anything else")

	var e struct {
		product, user, symptom, to string
		within                     time.Duration
	}
	escalate := &cobra.Command{
		Use: "escalate ID --product P --user U --symptom S", Short: "File the escalation form and pass the ticket to the next group (SPEC Art. 24)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(path(args[0], "/escalations"), map[string]any{"product": e.product, "user": e.user, "symptom": e.symptom,
				"time_limit": time.Now().Add(e.within).UTC(), "to_group": e.to})
		},
	}
	escalate.Flags().StringVar(&e.product, "product", "", "product")
	escalate.Flags().StringVar(&e.user, "user", "", "the user concerned")
	escalate.Flags().StringVar(&e.symptom, "symptom", "", "the symptom")
	escalate.Flags().StringVar(&e.to, "to", "", "group (default the next one)")
	escalate.Flags().DurationVar(&e.within, "within", 24*time.Hour, "time limit from now")

	merge := &cobra.Command{
		Use: "merge ID INTO", Short: "Merge a duplicate ticket into another; both histories are kept", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(path(args[0], "/merge"), map[string]string{"into": args[1]})
		},
	}

	attach := &cobra.Command{
		Use: "attach ID FILE", Short: "Attach a file (its type is checked from its content)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			out, err := c.raw("POST", path(args[0], "/attachments")+"?name="+url.QueryEscape(filepath.Base(args[1])), "application/octet-stream", b)
			if err != nil {
				return err
			}
			fmt.Println(string(out))
			return nil
		},
	}

	var score int
	var comments, channel string
	survey := &cobra.Command{
		Use: "survey ID --score N --channel phone", Short: "Record a satisfaction survey answered by phone, mail, SMS or fax", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(path(args[0], "/survey"), map[string]any{"score": score, "comments": comments, "channel": channel})
		},
	}
	survey.Flags().IntVar(&score, "score", 0, "1 to 5")
	survey.Flags().StringVar(&comments, "comments", "", "the customer's comments")
	survey.Flags().StringVar(&channel, "channel", "phone", "phone, mail, sms or fax")

	var from, to, format string
	report := &cobra.Command{
		Use: "report", Short: "Tickets by category, class and channel; SLA met %; handling time; survey scores (supervisor)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"format": {format}}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			b, err := c.raw("GET", "/api/v1/desk/reports?"+q.Encode(), "", nil)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			return err
		},
	}
	report.Flags().StringVar(&from, "from", "", "RFC 3339 (default a month ago)")
	report.Flags().StringVar(&to, "to", "", "RFC 3339 (default now)")
	report.Flags().StringVar(&format, "format", "json", "json or csv")

	evaluate := &cobra.Command{
		Use: "evaluate", Short: "Evaluate the SLA clocks now (supervisor)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct{ Changed int }
			if err := c.do("POST", "/api/v1/desk/evaluate", nil, &out); err != nil {
				return err
			}
			fmt.Printf("%d tickets got a warning or a breach\n", out.Changed)
			return nil
		},
	}
	cmd.AddCommand(create, list, show, take, wait, resolve, closeCmd, reopen, assign, work, escalate, merge, attach, survey, report, evaluate)
	for _, sc := range cmd.Commands() {
		sc.PreRunE = func(cmd *cobra.Command, args []string) error {
			if cmd == create && cr.join == "" && (cr.category == "" || cr.subject == "" || cr.name == "") {
				return errors.New("--category, --subject and --name are required (or --join ID)")
			}
			return nil
		}
	}
	return cmd
}
