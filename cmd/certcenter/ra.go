package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/server"
	"github.com/certcenter/certcenter/store"
)

// raw sends body with a content type and returns the answer's bytes; an API
// error becomes a Go error with the server's message.
func (c *apiClient) raw(method, path, contentType string, body []byte) ([]byte, error) {
	if c.http == nil {
		if err := c.connect(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s (%s, HTTP %d)", e.Error.Message, e.Error.Code, resp.StatusCode)
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// signCMS makes the CMS SignedData of content with the client credential,
// the same structure as `openssl cms -sign -nodetach -binary -outform DER`.
func (c *apiClient) signCMS(content []byte) ([]byte, error) {
	if c.http == nil {
		if err := c.connect(); err != nil {
			return nil, err
		}
	}
	kp, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("loading signing credential %s: %w", c.cert, err)
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(kp.Leaf, kp.PrivateKey, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("signing the application: %w", err)
	}
	return sd.Finish()
}

type raRequest struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	Org          string    `json:"org"`
	State        string    `json:"state"`
	Subject      string    `json:"subject"`
	Serial       string    `json:"serial"`
	TargetSerial string    `json:"target_serial"`
	Reason       string    `json:"reason"`
	DueAt        time.Time `json:"due_at"`
	Overdue      bool      `json:"overdue"`
	History      []struct {
		Actor   string    `json:"actor"`
		Action  string    `json:"action"`
		State   string    `json:"state"`
		Comment string    `json:"comment"`
		At      time.Time `json:"at"`
	} `json:"history"`
}

func printRequests(rs []raRequest) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tORG\tSTATE\tDUE\tSERIAL\tSUBJECT")
	for _, r := range rs {
		due := r.DueAt.Local().Format("2006-01-02 15:04")
		if r.DueAt.IsZero() {
			due = "-" // the CA's deadline starts after the superior's review
		}
		if r.Overdue {
			due += " OVERDUE"
		}
		serial := r.Serial
		if serial == "" {
			serial = r.TargetSerial
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.Org, r.State, due, serial, r.Subject)
	}
	tw.Flush()
}

// submit sends an application: signed with the client credential (a
// certificate administrator), as given (pre-signed), or unsigned (RA staff
// entering a walk-in application).
func submit(c *apiClient, content []byte, signedFile string, unsigned bool) error {
	var body []byte
	ct := "application/pkcs7-mime"
	var err error
	switch {
	case signedFile != "":
		body, err = os.ReadFile(signedFile)
	case unsigned:
		body, ct = content, "application/json"
	default:
		body, err = c.signCMS(content)
	}
	if err != nil {
		return err
	}
	b, err := c.raw("POST", "/api/v1/applications", ct, body)
	if err != nil {
		return err
	}
	var resp struct {
		Application string      `json:"application"`
		Requests    []raRequest `json:"requests"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return err
	}
	fmt.Printf("application %s received\n", resp.Application)
	printRequests(resp.Requests)
	return nil
}

func raCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "ra", Short: "RA client: apply, approve, reject, list, show, download, renew, revoke"}
	c.register(cmd)

	var signedFile string
	var unsigned bool
	apply := &cobra.Command{
		Use:   "apply APPLICATION.json",
		Short: "Sign an application with your certificate administrator credential (--cert/--key) and submit it",
		Long: "The application is JSON: {\"org\": \"ID\", \"kind\": \"issue|renew|revoke\", \"items\": [{\"name\", \"email\", \"org_unit\", \"profile\", \"csr\" (PEM), \"serial\", \"cause\"}]}.\n" +
			"It is signed as CMS SignedData (like `openssl cms -sign -nodetach -binary -outform DER`); --signed sends a document you signed yourself, --unsigned lets RA staff enter a walk-in application.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var content []byte
			if len(args) == 1 {
				var err error
				if content, err = os.ReadFile(args[0]); err != nil {
					return err
				}
			} else if signedFile == "" {
				return errors.New("give the application file, or --signed FILE")
			}
			return submit(&c, content, signedFile, unsigned)
		},
	}
	apply.Flags().StringVar(&signedFile, "signed", "", "submit this CMS SignedData (DER) as it is")
	apply.Flags().BoolVar(&unsigned, "unsigned", false, "submit the JSON without a signature (RA staff, walk-in users)")

	var comment, reason string
	approve := &cobra.Command{
		Use: "approve REQUEST", Short: "Approve the current step of a request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r raRequest
			if err := c.do("POST", "/api/v1/requests/"+url.PathEscape(args[0])+"/approve", map[string]string{"comment": comment}, &r); err != nil {
				return err
			}
			fmt.Printf("request %s is %s\n", r.ID, r.State)
			if r.Serial != "" {
				fmt.Printf("certificate %s\n", r.Serial)
			}
			return nil
		},
	}
	approve.Flags().StringVar(&comment, "comment", "", "recorded with the approval")
	reject := &cobra.Command{
		Use: "reject REQUEST --reason TEXT", Short: "Reject a request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r raRequest
			if err := c.do("POST", "/api/v1/requests/"+url.PathEscape(args[0])+"/reject", map[string]string{"reason": reason}, &r); err != nil {
				return err
			}
			fmt.Printf("request %s is %s\n", r.ID, r.State)
			return nil
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "why (required)")

	var state, kind, org, after string
	var overdue bool
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List requests", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			for k, v := range map[string]string{"state": state, "kind": kind, "org": org, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if overdue {
				q.Set("overdue", "true")
			}
			var resp struct {
				Items []raRequest `json:"items"`
				Next  string      `json:"next"`
			}
			if err := c.do("GET", "/api/v1/requests?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			printRequests(resp.Items)
			if resp.Next != "" {
				fmt.Printf("more: --after %s\n", resp.Next)
			}
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", "only requests in this state")
	list.Flags().StringVar(&kind, "kind", "", "issue, renew or revoke")
	list.Flags().StringVar(&org, "org", "", "only this organisation")
	list.Flags().BoolVar(&overdue, "overdue", false, "only unfinished requests past their working-day deadline")
	list.Flags().IntVar(&limit, "limit", 100, "page size")
	list.Flags().StringVar(&after, "after", "", "continue after this request ID")

	show := &cobra.Command{
		Use: "show REQUEST", Short: "Show a request and its history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r raRequest
			if err := c.do("GET", "/api/v1/requests/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			printRequests([]raRequest{r})
			for _, h := range r.History {
				fmt.Printf("  %s  %-10s %-16s %s %s\n", h.At.Local().Format(time.DateTime), h.Action, h.State, h.Actor, h.Comment)
			}
			return nil
		},
	}

	var format, out, serial string
	download := &cobra.Command{
		Use: "download [REQUEST]", Short: "Download the certificate of a request (or --serial) as pem, der or p7", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var path string
			switch {
			case serial != "":
				path = "/api/v1/ra/certificates/" + url.PathEscape(serial)
			case len(args) == 1:
				path = "/api/v1/requests/" + url.PathEscape(args[0]) + "/certificate"
			default:
				return errors.New("give a request ID or --serial")
			}
			b, err := c.raw("GET", path+"?format="+url.QueryEscape(format), "", nil)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = os.Stdout.Write(b)
				return err
			}
			return os.WriteFile(out, b, 0o644)
		},
	}
	download.Flags().StringVar(&format, "format", "pem", "pem, der or p7 (PKCS#7 chain)")
	download.Flags().StringVarP(&out, "out", "o", "", "file to write (default standard output)")
	download.Flags().StringVar(&serial, "serial", "", "download this certificate instead of a request's")

	var csrFile, cause string
	renew := &cobra.Command{
		Use: "renew --org ORG --serial SERIAL --csr NEW.csr", Short: "Sign and submit the renewal of a certificate", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			csr, err := os.ReadFile(csrFile)
			if err != nil {
				return fmt.Errorf("reading CSR: %w", err)
			}
			app, _ := json.Marshal(map[string]any{"org": org, "kind": "renew", "items": []map[string]string{{"serial": serial, "csr": string(csr)}}})
			return submit(&c, app, "", unsigned)
		},
	}
	renew.Flags().StringVar(&org, "org", "", "your organisation")
	renew.Flags().StringVar(&serial, "serial", "", "certificate to renew")
	renew.Flags().StringVar(&csrFile, "csr", "", "PEM certificate request for the new key")
	renew.Flags().BoolVar(&unsigned, "unsigned", false, "RA staff: submit without a signature")
	revoke := &cobra.Command{
		Use: "revoke --org ORG --serial SERIAL --cause CAUSE", Short: "Sign and submit a revocation request", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			app, _ := json.Marshal(map[string]any{"org": org, "kind": "revoke", "items": []map[string]string{{"serial": serial, "cause": cause}}})
			return submit(&c, app, "", unsigned)
		},
	}
	revoke.Flags().StringVar(&org, "org", "", "the certificate's organisation")
	revoke.Flags().StringVar(&serial, "serial", "", "certificate to revoke")
	revoke.Flags().StringVar(&cause, "cause", "", "key_lost, token_damaged, info_changed or documents_invalid")
	revoke.Flags().BoolVar(&unsigned, "unsigned", false, "RA staff: submit without a signature")
	for _, cm := range []*cobra.Command{renew, revoke} {
		cm.MarkFlagRequired("org")
		cm.MarkFlagRequired("serial")
	}
	renew.MarkFlagRequired("csr")
	revoke.MarkFlagRequired("cause")

	cmd.AddCommand(apply, approve, reject, list, show, download, renew, revoke, notificationsCmd(&c))
	cmd.AddCommand(raKeyCmd(&c))
	return cmd
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Audit log commands"}
	var cm common
	var c apiClient
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit log's hash chain (opens the data directory; if the server runs, asks it through the API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cm.load()
			if err != nil {
				return err
			}
			c.dataDir = cfg.DataDir
			rep, err := server.VerifyAudit(cmd.Context(), cfg, newLogger(cfg, io.Discard))
			if errors.Is(err, store.ErrInUse) {
				var b []byte
				b, err = c.raw("GET", "/api/v1/ra/audit/verify", "", nil)
				if err != nil && strings.Contains(err.Error(), "HTTP 409") {
					return fmt.Errorf("%w: %s", audit.ErrBroken, err)
				}
				if err == nil {
					err = json.Unmarshal(b, &rep)
				}
			}
			for _, p := range rep.Problems {
				fmt.Println("BROKEN:", p)
			}
			if err != nil {
				return err
			}
			fmt.Printf("audit log intact: %d entries, head %s\n", rep.Entries, rep.Head)
			return nil
		},
	}
	cm.register(verify)
	f := verify.Flags()
	f.StringVar(&c.server, "server", "https://localhost:8443", "API base URL, used when the server holds the data directory")
	f.StringVar(&c.cert, "cert", "", "auditor's client certificate PEM (default the bootstrap administrator's)")
	f.StringVar(&c.key, "key", "", "client key PEM")
	f.StringVar(&c.cacert, "cacert", "", "CA certificate to trust for the server")
	cmd.AddCommand(verify)
	return cmd
}

// notificationsCmd lists the RA's notification outbox: every reminder and
// renewal link, whether or not a channel delivered it.
func notificationsCmd(c *apiClient) *cobra.Command {
	var status, event, org, after string
	var limit int
	var full bool
	cmd := &cobra.Command{
		Use: "notifications", Short: "List the notification outbox (reminders, renewal links) and its delivery state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			for k, v := range map[string]string{"status": status, "event": event, "org": org, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var resp struct {
				Items []struct {
					ID         string            `json:"id"`
					Event      string            `json:"event"`
					Org        string            `json:"org"`
					Request    string            `json:"request"`
					Serial     string            `json:"serial"`
					Recipients []string          `json:"recipients"`
					Subject    string            `json:"subject"`
					Body       string            `json:"body"`
					Status     string            `json:"status"`
					Channels   map[string]string `json:"channels"`
					Attempts   int               `json:"attempts"`
					LastError  string            `json:"last_error"`
					CreatedAt  time.Time         `json:"created_at"`
				} `json:"items"`
				Next string `json:"next"`
			}
			if err := c.do("GET", "/api/v1/notifications?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tEVENT\tORG\tSTATUS\tSERIAL\tTO\tERROR")
			for _, n := range resp.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.CreatedAt.Local().Format("2006-01-02 15:04"), n.Event, n.Org,
					n.Status, n.Serial, strings.Join(n.Recipients, ","), n.LastError)
			}
			tw.Flush()
			if full {
				for _, n := range resp.Items {
					fmt.Printf("\n== %s %s\nSubject: %s\n\n%s", n.ID, n.Event, n.Subject, n.Body)
				}
			}
			if resp.Next != "" {
				fmt.Printf("more: --after %s\n", resp.Next)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "pending, sent, failed or held (no channel configured)")
	cmd.Flags().StringVar(&event, "event", "", "renewal_reminder or renewed")
	cmd.Flags().StringVar(&org, "org", "", "only this organisation")
	cmd.Flags().IntVar(&limit, "limit", 100, "page size")
	cmd.Flags().StringVar(&after, "after", "", "continue after this notification ID")
	cmd.Flags().BoolVar(&full, "full", false, "print each message's subject and text (with the renewal links)")
	return cmd
}
