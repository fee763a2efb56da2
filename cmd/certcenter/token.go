package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/certcenter/certcenter/token"
)

// tokenCmd is the USBKey inventory and the holder's side of an unlock
// (SPEC Art. 4, 12, 25): staff receive tokens into stock and personalise
// them, certificate administrators request unlocks and replacements, and
// `token unlock` resets the user PIN of the token plugged into this
// machine with the authorisation the service gives once.
func tokenCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "token", Short: "USBKeys: inventory, personalisation, PIN unlock, replacement"}
	c.register(cmd)
	printToken := func(w io.Writer, v token.View) {
		fmt.Fprintf(w, "token %s (%s): %s", v.Serial, v.Model, v.State)
		if v.Holder != "" {
			fmt.Fprintf(w, ", holder %s %s of %s", v.Holder, v.HolderName, v.Org)
		}
		fmt.Fprintln(w)
		for _, s := range v.Certificates {
			fmt.Fprintf(w, "  certificate %s\n", s)
		}
	}

	var model string
	add := &cobra.Command{
		Use: "add SERIAL --model MODEL", Short: "Receive a token into stock (RA officer, support engineer)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v token.View
			if err := c.do("POST", "/api/v1/tokens", token.AddRequest{Serial: args[0], Model: model}, &v); err != nil {
				return err
			}
			printToken(cmd.OutOrStdout(), v)
			return nil
		},
	}
	add.Flags().StringVar(&model, "model", "pkcs11", "a tokens.models name")

	var holder, org, state string
	list := &cobra.Command{
		Use: "list [--holder H | --org O] [--state S]", Short: "List tokens", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {"1000"}}
			for k, v := range map[string]string{"holder": holder, "org": org, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var page struct{ Items []token.View }
			if err := c.do("GET", "/api/v1/tokens?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tMODEL\tSTATE\tHOLDER\tORG\tCERTIFICATES")
			for _, v := range page.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Serial, v.Model, v.State, v.Holder, v.Org, strings.Join(v.Certificates, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&holder, "holder", "", "tokens of this holder (subscriber ID)")
	list.Flags().StringVar(&org, "org", "", "tokens of this organisation")
	list.Flags().StringVar(&state, "state", "", "in_stock, issued, locked, lost, damaged or retired")

	show := &cobra.Command{
		Use: "show SERIAL", Short: "Show a token and its history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v token.View
			if err := c.do("GET", "/api/v1/tokens/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			printToken(cmd.OutOrStdout(), v)
			for _, e := range v.History {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s %s %s → %s %s %s\n", e.At.Format("2006-01-02 15:04"), e.Actor, e.From, e.State, e.Request, e.Note)
			}
			return nil
		},
	}

	// Personalisation and a replacement's new token: the derived SO PIN is
	// set on the token here when the module is given, else printed once.
	var module, transportFile string
	setCredential := func(cmd *cobra.Command, serial string, p token.Personalised) error {
		out := cmd.OutOrStdout()
		printToken(out, p.Token)
		if module == "" || p.Credential.Form != token.FormSOPIN {
			fmt.Fprintf(out, "credential (%s, shown once): %s%s\n%s\n", p.Credential.Form, p.Credential.SOPIN, p.Credential.AdminKey, p.Note)
			return nil
		}
		transport, err := readSecretFile(transportFile, "--transport-so-pin-file")
		if err != nil {
			return err
		}
		if err := (token.Device{Module: module, Serial: serial}).SetSOPIN(transport, p.Credential.SOPIN); err != nil {
			// The credential is given once: print it so the operator can
			// set it by hand.
			return fmt.Errorf("setting the derived SO PIN on token %s: %w\nset it by hand (it is not shown again): SO PIN %s", serial, err, p.Credential.SOPIN)
		}
		fmt.Fprintf(out, "the token's SO PIN is now the derived one (not stored anywhere)\n")
		return nil
	}
	var in token.PersonaliseRequest
	personalise := &cobra.Command{
		Use:   "personalise SERIAL --org ORG --certificate SERIAL [--certificate SERIAL] [--module PATH --transport-so-pin-file F]",
		Short: "Bind a token in stock to its holder and certificates; set its derived SO PIN",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p token.Personalised
			if err := c.do("POST", "/api/v1/tokens/"+url.PathEscape(args[0])+"/personalise", in, &p); err != nil {
				return err
			}
			return setCredential(cmd, args[0], p)
		},
	}
	personalise.Flags().StringVar(&in.Org, "org", "", "the holder's organisation (required)")
	personalise.Flags().StringArrayVar(&in.Certificates, "certificate", nil, "serial of a certificate whose key is on the token (repeatable)")
	personalise.Flags().StringVar(&in.Holder, "holder", "", "holder's subscriber ID (default: the certificate's)")
	personalise.Flags().StringVar(&in.HolderName, "holder-name", "", "holder's name (default: the certificate's CN)")
	credential := &cobra.Command{
		Use:   "credential SERIAL [--module PATH --transport-so-pin-file F]",
		Short: "The derived SO PIN of a replacing token, once; set it on the token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p token.Personalised
			if err := c.do("POST", "/api/v1/tokens/"+url.PathEscape(args[0])+"/credential", nil, &p); err != nil {
				return err
			}
			return setCredential(cmd, args[0], p)
		},
	}
	for _, cc := range []*cobra.Command{personalise, credential} {
		cc.Flags().StringVar(&module, "module", "", "PKCS#11 module of the token (sets the SO PIN on it)")
		cc.Flags().StringVar(&transportFile, "transport-so-pin-file", "", "file holding the SO PIN the token came with")
	}

	var report token.StateRequest
	reportCmd := &cobra.Command{
		Use: "report SERIAL --state lost|damaged|retired --note WHY", Short: "Record a token lost, damaged or retired", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v token.View
			if err := c.do("POST", "/api/v1/tokens/"+url.PathEscape(args[0])+"/state", report, &v); err != nil {
				return err
			}
			printToken(cmd.OutOrStdout(), v)
			return nil
		},
	}
	reportCmd.Flags().StringVar(&report.State, "state", "", "lost, damaged or retired")
	reportCmd.Flags().StringVar(&report.Note, "note", "", "why (required)")

	var comment string
	requestUnlock := &cobra.Command{
		Use: "request-unlock SERIAL", Short: "Ask for a USBKey unlock (certificate administrator; 2 working days)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rq struct{ ID, State, DueAt string }
			body := map[string]string{"token_serial": args[0], "comment": comment}
			if err := c.do("POST", "/api/v1/ra/token-unlock", body, &rq); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unlock request %s received (%s), due %s\n", rq.ID, rq.State, rq.DueAt)
			return nil
		},
	}
	requestUnlock.Flags().StringVar(&comment, "comment", "", "recorded with the request")

	var serial, newPINFile, challenge string
	unlock := &cobra.Command{
		Use:   "unlock --module PATH --token-serial S [--new-pin-file F] | --token-serial S --challenge HEX",
		Short: "Reset the user PIN of the plugged-in token with its approved unlock authorisation (once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if serial == "" {
				return errors.New("--token-serial is required")
			}
			var newPIN string
			if challenge == "" {
				if module == "" {
					return errors.New("--module is required for a PKCS#11 token (or --challenge for a challenge-response token)")
				}
				// Everything that can fail here fails before the one-time
				// authorisation is fetched.
				if _, err := token.Serials(module); err != nil {
					return err
				}
				var err error
				if newPIN, err = readNewPIN(cmd, newPINFile); err != nil {
					return err
				}
			}
			var auth struct {
				Form     string `json:"form"`
				SOPIN    string `json:"so_pin"`
				Response string `json:"response"`
				Warning  string `json:"warning"`
			}
			body := map[string]string{}
			if challenge != "" {
				body["challenge"] = challenge
			}
			if err := c.do("POST", "/api/v1/ra/token-unlock/"+url.PathEscape(serial)+"/authorisation", body, &auth); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", auth.Warning)
			if auth.Form != token.FormSOPIN {
				fmt.Fprintf(out, "answer to the token's challenge (%s): %s\n", auth.Form, auth.Response)
				return nil
			}
			if module == "" {
				return fmt.Errorf("token %s is a PKCS#11 token: --module is needed; the authorisation is used up, ask for a new unlock", serial)
			}
			if err := (token.Device{Module: module, Serial: serial}).InitUserPIN(auth.SOPIN, newPIN); err != nil {
				return fmt.Errorf("resetting the PIN of token %s: %w", serial, err)
			}
			fmt.Fprintf(out, "token %s unlocked: the new user PIN is set\n", serial)
			return nil
		},
	}
	unlock.Flags().StringVar(&module, "module", "", "PKCS#11 module of the token, e.g. /usr/lib/softhsm/libsofthsm2.so")
	unlock.Flags().StringVar(&serial, "token-serial", "", "the token's serial (as the module reports it)")
	unlock.Flags().StringVar(&newPINFile, "new-pin-file", "", "read the new user PIN from this file instead of asking")
	unlock.Flags().StringVar(&challenge, "challenge", "", "challenge read from a challenge-response token (hex): print the answer")

	var rr struct {
		TokenSerial    string `json:"token_serial"`
		NewTokenSerial string `json:"new_token_serial"`
		Cause          string `json:"cause"`
		CSR            string `json:"csr"`
		Comment        string `json:"comment,omitempty"`
	}
	var csrFile string
	replace := &cobra.Command{
		Use:   "replace --token-serial OLD --new-token-serial NEW --cause lost|damaged|exchanged --csr FILE",
		Short: "Ask for a USBKey replacement (confirmed by a support engineer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(csrFile)
			if err != nil {
				return fmt.Errorf("--csr: %w", err)
			}
			rr.CSR = string(b)
			var rq struct{ ID, State string }
			if err := c.do("POST", "/api/v1/ra/token-replace", rr, &rq); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replacement request %s received (%s)\n", rq.ID, rq.State)
			return nil
		},
	}
	replace.Flags().StringVar(&rr.TokenSerial, "token-serial", "", "the token replaced")
	replace.Flags().StringVar(&rr.NewTokenSerial, "new-token-serial", "", "a token in stock")
	replace.Flags().StringVar(&rr.Cause, "cause", "", "lost (certificates revoked as keyCompromise), damaged or exchanged")
	replace.Flags().StringVar(&csrFile, "csr", "", "PEM CSR made on the new token")
	replace.Flags().StringVar(&rr.Comment, "comment", "", "recorded with the request")

	cmd.AddCommand(add, list, show, personalise, credential, reportCmd, requestUnlock, unlock, replace)
	return cmd
}

// readSecretFile reads a PIN from a file, without its line end.
func readSecretFile(path, flag string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s is required", flag)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// readNewPIN reads the new user PIN from file, or asks for it twice on the
// terminal without echo.
func readNewPIN(cmd *cobra.Command, file string) (string, error) {
	if file != "" {
		pin, err := readSecretFile(file, "--new-pin-file")
		if err == nil && pin == "" {
			err = errors.New("--new-pin-file is empty")
		}
		return pin, err
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		pin := strings.TrimRight(line, "\r\n")
		if pin == "" {
			return "", fmt.Errorf("no new PIN on standard input: %v", err)
		}
		return pin, nil
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pin, err := ask("new user PIN: ")
	if err != nil {
		return "", err
	}
	again, err := ask("again: ")
	if err != nil {
		return "", err
	}
	if pin == "" || pin != again {
		return "", errors.New("the PINs differ or are empty; nothing was fetched")
	}
	return pin, nil
}
