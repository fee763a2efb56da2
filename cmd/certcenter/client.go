package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/internal/httpapi"
)

// apiClient calls the API with a client certificate; the defaults are the
// bootstrap administrator's credential in the data directory.
type apiClient struct {
	server, dataDir, cert, key, cacert string
	http                               *http.Client
	// timeout bounds each call; default 30s.
	timeout time.Duration
}

func (c *apiClient) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.server, "server", "https://localhost:8443", "API base URL")
	f.StringVar(&c.dataDir, "data", "./data", "data directory whose bootstrap credential is the default")
	f.StringVar(&c.cert, "cert", "", "client certificate PEM (default DATA/"+bootstrap.AdminCert+")")
	f.StringVar(&c.key, "key", "", "client key PEM (default DATA/"+bootstrap.AdminKey+")")
	f.StringVar(&c.cacert, "cacert", "", "CA certificate to trust for the server (default DATA/"+bootstrap.CACert+")")
}

func (c *apiClient) connect() error {
	def := func(v *string, rel string) {
		if *v == "" {
			*v = filepath.Join(c.dataDir, rel)
		}
	}
	def(&c.cert, bootstrap.AdminCert)
	def(&c.key, bootstrap.AdminKey)
	def(&c.cacert, bootstrap.CACert)
	kp, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("loading client credential %s: %w", c.cert, err)
	}
	pemCA, err := os.ReadFile(c.cacert)
	if err != nil {
		return fmt.Errorf("reading CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return fmt.Errorf("%s holds no certificate", c.cacert)
	}
	c.http = &http.Client{Timeout: cmp.Or(c.timeout, 30*time.Second), Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{kp}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return nil
}

// do sends a request and decodes a JSON answer into out; an API error
// becomes a Go error with the server's message.
func (c *apiClient) do(method, path string, body, out any) error {
	if c.http == nil {
		if err := c.connect(); err != nil {
			return err
		}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (%s, HTTP %d)", e.Error.Message, e.Error.Code, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// serialArg reads a serial given on the command line the way the API reads
// one (odd digit counts, colons, 0x), so a typo is reported before anything
// is sent, and returns it as the API prints it: lower-case hex.
func serialArg(s string) (string, error) {
	b, err := httpapi.ParseSerial(s)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func certCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "cert", Short: "List, show and revoke certificates through the API"}
	c.register(cmd)

	var limit int
	var after, cn, status string
	list := &cobra.Command{
		Use: "list", Short: "List certificates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			for k, v := range map[string]string{"after": after, "cn": cn, "status": status} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var resp struct {
				Items []httpapi.CertView `json:"items"`
				Next  string             `json:"next"`
			}
			if err := c.do("GET", "/api/v1/certs?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tSTATUS\tPROFILE\tNOT AFTER\tSUBJECT")
			for _, v := range resp.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Serial, v.Status, v.Profile, v.NotAfter.Format(time.DateOnly), v.Subject)
			}
			tw.Flush()
			if resp.Next != "" {
				fmt.Printf("more: --after %s\n", resp.Next)
			}
			return nil
		},
	}
	list.Flags().IntVar(&limit, "limit", 100, "page size")
	list.Flags().StringVar(&after, "after", "", "continue after this serial")
	list.Flags().StringVar(&cn, "cn", "", "only certificates with this subject CN")
	list.Flags().StringVar(&status, "status", "", "only valid or revoked")

	var asPEM bool
	show := &cobra.Command{
		Use: "show SERIAL", Short: "Show a certificate", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := serialArg(args[0])
			if err != nil {
				return err
			}
			var v httpapi.CertView
			if err := c.do("GET", "/api/v1/certs/"+serial, nil, &v); err != nil {
				return err
			}
			if asPEM {
				fmt.Print(v.PEM)
				return nil
			}
			fmt.Printf("serial:    %s\nissuer:    %s\nsubject:   %s\nprofile:   %s\nstatus:    %s\nnot after: %s\n",
				v.Serial, v.Issuer, v.Subject, v.Profile, v.Status, v.NotAfter.Format(time.RFC3339))
			if v.Status == "revoked" {
				fmt.Printf("revoked:   %s (%s)\n", v.RevokedAt.Format(time.RFC3339), v.Reason)
			}
			return nil
		},
	}
	show.Flags().BoolVar(&asPEM, "pem", false, "print the certificate as PEM")

	var reason, comment string
	revoke := &cobra.Command{
		Use: "revoke SERIAL", Short: "Revoke a certificate", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := serialArg(args[0])
			if err != nil {
				return err
			}
			var v httpapi.CertView
			body := map[string]string{"reason": reason, "comment": comment}
			if err := c.do("POST", "/api/v1/certs/"+serial+"/revoke", body, &v); err != nil {
				return err
			}
			fmt.Printf("revoked %s at %s (%s)\n", v.Serial, v.RevokedAt.Format(time.RFC3339), v.Reason)
			return nil
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason: keyCompromise, superseded, affiliationChanged, cessationOfOperation, privilegeWithdrawn, certificateHold, unspecified")
	revoke.Flags().StringVar(&comment, "comment", "", "recorded in the audit log")

	cmd.AddCommand(list, show, revoke)
	return cmd
}
