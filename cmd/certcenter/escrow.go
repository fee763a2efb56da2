package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/ra"
)

// raKeyCmd is `certcenter ra key`: encryption certificates with escrowed
// keys and key recovery (SPEC Art. 13) through the RA API.
func raKeyCmd(c *apiClient) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Encryption certificates with escrowed keys: request, recover, link, download"}

	var unsigned bool
	send := func(path string, body map[string]any) error {
		content, err := json.Marshal(body)
		if err != nil {
			return err
		}
		ct := "application/json"
		if !unsigned {
			if content, err = c.signCMS(content); err != nil {
				return err
			}
			ct = "application/pkcs7-mime"
		}
		b, err := c.raw("POST", path, ct, content)
		if err != nil {
			return err
		}
		var r raRequest
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		fmt.Printf("request %s (%s) received: %s, due %s\n", r.ID, r.Kind, r.State, r.DueAt.Format("2006-01-02 15:04 MST"))
		return nil
	}

	var org, signing, alg, delivery string
	request := &cobra.Command{
		Use:   "request --org ORG --signing-serial SERIAL",
		Short: "Request an encryption certificate paired with a signing certificate (signed with your certificate administrator credential)",
		Long: "The CA makes the key pair, keeps the private key only wrapped under its key-encryption key, and issues the certificate after an RA officer approves.\n" +
			"The key reaches the holder through `certcenter ra key link` and `download`: as CMS enveloped to the (RSA) signing certificate, or as PKCS#12 under a one-time password.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := serialArg(signing)
			if err != nil {
				return fmt.Errorf("--signing-serial: %w", err)
			}
			return send("/api/v1/ra/encryption-certificates", map[string]any{"org": org, "signing_serial": s, "algorithm": alg, "delivery": delivery})
		},
	}
	request.Flags().StringVar(&org, "org", "", "organisation ID (required)")
	request.Flags().StringVar(&signing, "signing-serial", "", "the holder's signing certificate (required)")
	request.Flags().StringVar(&alg, "algorithm", "", "rsa-2048 or ecdsa-p256 (default ra.escrow.key_algorithm)")
	request.Flags().StringVar(&delivery, "delivery", "", "cms or pkcs12 (default ra.escrow.delivery)")
	request.Flags().BoolVar(&unsigned, "unsigned", false, "send the JSON unsigned (RA staff)")
	request.MarkFlagRequired("org")
	request.MarkFlagRequired("signing-serial")

	var serial, reason, recipient, caseRef string
	var judicial bool
	recoverCmd := &cobra.Command{
		Use:   "recover --org ORG --serial SERIAL --reason TEXT",
		Short: "Request the recovery of an escrowed key (5 working days); --judicial with --case-reference needs M recovery officers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := serialArg(serial)
			if err != nil {
				return fmt.Errorf("--serial: %w", err)
			}
			body := map[string]any{"org": org, "serial": s, "reason": reason, "delivery": delivery}
			if recipient != "" {
				if body["recipient"], err = serialArg(recipient); err != nil {
					return fmt.Errorf("--recipient: %w", err)
				}
			}
			if judicial {
				body["judicial"], body["case_reference"] = true, caseRef
			}
			return send("/api/v1/ra/key-recoveries", body)
		},
	}
	recoverCmd.Flags().StringVar(&org, "org", "", "organisation ID (required)")
	recoverCmd.Flags().StringVar(&serial, "serial", "", "the encryption certificate (required)")
	recoverCmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	recoverCmd.Flags().StringVar(&delivery, "delivery", "", "cms or pkcs12 (default ra.escrow.delivery)")
	recoverCmd.Flags().StringVar(&recipient, "recipient", "", "valid RSA signing certificate to envelope to (default the paired one)")
	recoverCmd.Flags().BoolVar(&judicial, "judicial", false, "a recovery ordered by a court or authority")
	recoverCmd.Flags().StringVar(&caseRef, "case-reference", "", "the order's file number (with --judicial)")
	recoverCmd.Flags().BoolVar(&unsigned, "unsigned", false, "send the JSON unsigned (RA staff, judicial recoveries)")
	recoverCmd.MarkFlagRequired("org")
	recoverCmd.MarkFlagRequired("serial")
	recoverCmd.MarkFlagRequired("reason")

	link := &cobra.Command{
		Use: "link REQUEST", Short: "Make the one-time download link of an issued or recovered key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var l struct {
				URL     string `json:"download_url"`
				Expires string `json:"expires_at"`
				Format  string `json:"format"`
			}
			if err := c.do("POST", "/api/v1/requests/"+url.PathEscape(args[0])+"/key-link", nil, &l); err != nil {
				return err
			}
			fmt.Printf("%s\n(%s, usable once, until %s)\n", l.URL, l.Format, l.Expires)
			return nil
		},
	}

	var out string
	download := &cobra.Command{
		Use:   "download URL --out FILE",
		Short: "Use a one-time key link: writes the CMS or PKCS#12 to FILE (0600) and prints a PKCS#12's password once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i := strings.Index(args[0], "/api/v1/key-downloads/")
			if i < 0 {
				return errors.New("not a key download link (…/api/v1/key-downloads/TOKEN)")
			}
			if c.http == nil {
				if err := c.connect(); err != nil {
					return err
				}
			}
			resp, err := c.http.Get(strings.TrimRight(c.server, "/") + args[0][i:])
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Error struct{ Message string } `json:"error"`
				}
				json.Unmarshal(b, &e)
				return fmt.Errorf("HTTP %d: %s", resp.StatusCode, e.Error.Message)
			}
			if err := os.WriteFile(out, b, 0o600); err != nil {
				return err
			}
			fmt.Printf("wrote %s (%s)\n", out, resp.Header.Get("Content-Type"))
			if p := resp.Header.Get(ra.PasswordHeader); p != "" {
				fmt.Printf("PKCS#12 password (shown once): %s\n", p)
			}
			return nil
		},
	}
	download.Flags().StringVar(&out, "out", "", "file to write (required)")
	download.MarkFlagRequired("out")

	cmd.AddCommand(request, recoverCmd, link, download)
	return cmd
}
