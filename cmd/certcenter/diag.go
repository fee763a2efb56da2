package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/admin"
)

// diagCmd shows where certificates stand everywhere: what the hotline opens
// when a certificate "cannot be found" or "does not verify".
func diagCmd() *cobra.Command {
	var c apiClient
	var asJSON bool
	cmd := &cobra.Command{Use: "diag", Short: "Diagnose certificates, organisations and publishing targets through the API"}
	c.register(cmd)
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print the API's JSON answer")

	// show fetches path into v, then prints it as JSON or with human.
	show := func(path string, v any, human func(io.Writer)) error {
		if err := c.do("GET", path, nil, v); err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		human(os.Stdout)
		return nil
	}

	cert := &cobra.Command{
		Use: "cert SERIAL", Short: "Where one certificate stands: store, OCSP, CRLs, directory, targets", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := serialArg(args[0])
			if err != nil {
				return err
			}
			var d admin.CertDiagnosis
			return show("/api/v1/diagnostics/certificates/"+serial, &d, func(w io.Writer) { printCertDiagnosis(w, &d) })
		},
	}

	var limit int
	var after string
	org := &cobra.Command{
		Use: "org ORG", Short: "An organisation's certificates with a problem, and counts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if after != "" {
				s, err := serialArg(after)
				if err != nil {
					return err
				}
				q.Set("after", s)
			}
			var d admin.OrgDiagnosis
			return show("/api/v1/diagnostics/organisations/"+url.PathEscape(args[0])+"?"+q.Encode(), &d, func(w io.Writer) {
				n := d.Counts
				fmt.Fprintf(w, "organisation %s: %d certificates (%d valid, %d revoked, %d expired), %d with problems\n",
					d.Org, n.Certificates, n.Valid, n.Revoked, n.Expired, n.WithProblems)
				for code, k := range n.Problems {
					fmt.Fprintf(w, "  %-24s %d\n", code, k)
				}
				for _, t := range d.Targets {
					fmt.Fprintf(w, "  target %s: %d published, %d pending, %d failed, %d absent, %d not published\n",
						t.Target, t.Published, t.Pending, t.Failed, t.Absent, t.NotPublished)
					for _, f := range t.FailedItems {
						fmt.Fprintf(w, "    failed %s %s: %s\n", f.Serial, f.DN, f.Error)
					}
				}
				for i := range d.Items {
					it := &d.Items[i]
					fmt.Fprintf(w, "\n%s  %s  %s  %s\n", it.Certificate.Serial, it.Certificate.Status, it.Certificate.Profile, it.Certificate.Subject)
					printProblems(w, it.Problems)
				}
				if d.Next != "" {
					fmt.Fprintf(w, "\nmore: --after %s\n", d.Next)
				}
			})
		},
	}
	org.Flags().IntVar(&limit, "limit", 100, "page size")
	org.Flags().StringVar(&after, "after", "", "continue after this serial")

	targets := &cobra.Command{
		Use: "targets", Short: "The external publishing targets and their delivery state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d admin.TargetsDiagnosis
			return show("/api/v1/diagnostics/targets", &d, func(w io.Writer) {
				if len(d.Targets) == 0 {
					fmt.Fprintf(w, "no targets (%s)\n", d.Note)
				}
				for _, t := range d.Targets {
					state := "disconnected"
					if t.Connected {
						state = "connected"
					}
					if t.Paused {
						state += ", paused"
					}
					fmt.Fprintf(w, "%s  %s  pending %d, delivered %d, last success %s\n", t.Name, state, t.Pending, t.Delivered, when(t.LastSuccess))
					if t.LastError != "" {
						fmt.Fprintf(w, "  last error at %s: %s\n", when(t.LastErrorAt), t.LastError)
					}
					if t.Failed > 0 {
						fmt.Fprintf(w, "  %d failed records (retried with backoff):\n", t.Failed)
					}
					for _, f := range t.FailedRecords {
						fmt.Fprintf(w, "    %s %s: %s (since %s, %d tries, next %s)\n", f.Key, f.DN, f.Error, when(f.Since), f.Tries, when(f.NextRetry))
					}
				}
			})
		},
	}
	cmd.AddCommand(cert, org, targets)
	return cmd
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func printCertDiagnosis(w io.Writer, d *admin.CertDiagnosis) {
	v := d.Certificate
	fmt.Fprintf(w, "certificate %s\n  subject:     %s\n  issuer:      %s\n  profile:     %s\n  status:      %s\n", v.Serial, v.Subject, v.Issuer, v.Profile, v.Status)
	if v.Status == "revoked" {
		fmt.Fprintf(w, "  revoked:     %s (%s)\n", when(v.RevokedAt), v.Reason)
	}
	fmt.Fprintf(w, "  validity:    %s to %s\n", when(v.NotBefore), when(v.NotAfter))
	for _, kv := range [][2]string{{"subscriber", v.SubscriberID}, {"organisation", v.Org}, {"superseded by", v.SupersededBy}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "  %-12s %s\n", kv[0]+":", kv[1])
		}
	}
	fmt.Fprintln(w, "OCSP")
	if o := d.OCSP; o != nil {
		status := o.Status
		if o.Status == "revoked" {
			status += fmt.Sprintf(" at %s (%s)", when(o.RevokedAt), o.Reason)
		}
		fmt.Fprintf(w, "  served from %s: %s\n  thisUpdate %s, nextUpdate %s, producedAt %s\n  responder %s (current %s)\n",
			o.Source, status, when(o.ThisUpdate), when(o.NextUpdate), when(o.ProducedAt), o.ResponderSerial, o.CurrentResponderSerial)
	} else {
		fmt.Fprintln(w, "  (not available)")
	}
	fmt.Fprintln(w, "CRLs")
	for _, c := range d.CRLs {
		on := "does not list it"
		if c.Listed {
			on = "LISTS it"
		}
		if c.Error != "" {
			on = "unreadable: " + c.Error
		}
		kind := "full "
		if c.Delta {
			kind = "delta"
		}
		fmt.Fprintf(w, "  %s %-20s CRL %d, thisUpdate %s, nextUpdate %s, %d entries: %s\n", kind, c.File, c.Number, when(c.ThisUpdate), when(c.NextUpdate), c.Entries, on)
	}
	fmt.Fprintln(w, "directory")
	switch dir := d.Directory; {
	case dir == nil:
		fmt.Fprintf(w, "  (%s)\n", d.DirectoryNote)
	default:
		dn := dir.DN
		if dn == "" {
			dn = "(no entry)"
		}
		fmt.Fprintf(w, "  %s\n  userCertificate;binary carries it: %v (expected: %v", dn, dir.Published, dir.Expected)
		if dir.Why != "" {
			fmt.Fprintf(w, ", %s", dir.Why)
		}
		fmt.Fprintln(w, ")")
	}
	fmt.Fprintln(w, "targets")
	if len(d.Targets) == 0 {
		fmt.Fprintf(w, "  (none: %s)\n", strings.TrimPrefix(d.TargetsNote, "no publishing targets: "))
	}
	for _, t := range d.Targets {
		fmt.Fprintf(w, "  %s: %s", t.Target, t.State)
		if !t.PublishedAt.IsZero() {
			fmt.Fprintf(w, " at %s", when(t.PublishedAt))
		}
		if t.DN != "" {
			fmt.Fprintf(w, " %s", t.DN)
		}
		if t.Error != "" {
			fmt.Fprintf(w, " (%s; next retry %s)", t.Error, when(t.NextRetry))
		}
		if !t.AbsentAtCheck.IsZero() {
			fmt.Fprintf(w, "; absent at the resync check of %s", when(t.AbsentAtCheck))
		}
		fmt.Fprintln(w)
	}
	printProblems(w, d.Problems)
}

func printProblems(w io.Writer, ps []admin.Problem) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "no problems")
		return
	}
	fmt.Fprintf(w, "%d problems\n", len(ps))
	for _, p := range ps {
		fmt.Fprintf(w, "  [%s] %s: %s\n", p.Where, p.Code, p.Message)
	}
}

// publishCmd pauses, resumes and resyncs publishing targets (role
// ca_operator; each is audited).
func publishCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "publish", Short: "Pause, resume or resync an external publishing target through the API"}
	c.register(cmd)
	for _, op := range []struct{ name, short string }{
		{"pause", "Stop delivery to a target (durable; its changes queue)"},
		{"resume", "Restart delivery to a paused target and retry its failed records now"},
		{"resync", "Compare the target with the store and repair it (add, replace, remove)"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use: op.name + " NAME", Short: op.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var t admin.TargetState
				if err := c.do("POST", "/api/v1/diagnostics/targets/"+url.PathEscape(args[0])+"/"+op.name, nil, &t); err != nil {
					return err
				}
				fmt.Printf("%s: %s requested (paused: %v, pending %d, failed %d)\n", t.Name, op.name, t.Paused, t.Pending, t.Failed)
				return nil
			},
		})
	}
	return cmd
}
