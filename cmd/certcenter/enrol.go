package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// credential is the API's answer to an enrolment.
type credential struct {
	ID          string `json:"id"`
	Org         string `json:"org"`
	Role        string `json:"role"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// enrolment is the part of an enrolment command that makes the holder's
// key (or takes their CSR) and writes the credential they log in with.
type enrolment struct {
	name, email, csrFile, outDir string
}

func (e *enrolment) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&e.name, "name", "", "the holder's full name (required)")
	cmd.Flags().StringVar(&e.email, "email", "", "the holder's e-mail address")
	cmd.Flags().StringVar(&e.csrFile, "csr", "", "the holder's PEM certificate request; without it a key is made here and written to --out")
	cmd.Flags().StringVar(&e.outDir, "out", ".", "directory for ID.crt (certificate and CA), ID.key (when made here) and ca.crt")
	cmd.MarkFlagRequired("name")
}

// enrol sends body (plus the CSR) to path and writes the credential of id.
func (e *enrolment) enrol(c *apiClient, path, id string, body map[string]string) error {
	keyPath := filepath.Join(e.outDir, id+".key")
	var keyPEM []byte
	if e.csrFile != "" {
		b, err := os.ReadFile(e.csrFile)
		if err != nil {
			return fmt.Errorf("reading CSR: %w", err)
		}
		body["csr"] = string(b)
	} else {
		// The key is made on this machine and never sent: the server
		// signs a request for it.
		if _, err := os.Stat(keyPath); err == nil {
			return fmt.Errorf("%s exists: remove it or choose another --out", keyPath)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: e.name}}, key)
		if err != nil {
			return fmt.Errorf("making the certificate request: %w", err)
		}
		body["csr"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		kd, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	}
	body["id"], body["name"] = id, e.name
	if e.email != "" {
		body["email"] = e.email
	}
	var cred credential
	if err := c.do("POST", path, body, &cred); err != nil {
		return err
	}
	if err := os.MkdirAll(e.outDir, 0o700); err != nil {
		return err
	}
	if keyPEM != nil {
		if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
	}
	crtPath := filepath.Join(e.outDir, id+".crt")
	if err := os.WriteFile(crtPath, []byte(cred.Certificate+cred.CA), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.outDir, "ca.crt"), []byte(cred.CA), 0o644); err != nil {
		return err
	}
	fmt.Printf("credential %s for %s: %s", cred.Serial, id, crtPath)
	if keyPEM != nil {
		fmt.Printf(", key %s", keyPath)
	}
	fmt.Printf(" (use with --cert %s --key %s)\n", crtPath, keyPath)
	return nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func orgCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "org", Short: "Subscriber organisations and their certificate administrators (admin credential)"}
	c.register(cmd)

	var name, parent string
	var multi bool
	add := &cobra.Command{
		Use: "add ID --name NAME", Short: "Add an organisation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"id": args[0], "name": name}
			if parent != "" {
				body["parent"] = parent
			}
			if multi {
				body["multi_level"] = true
			}
			var o struct{ ID, Name, Parent string }
			if err := c.do("POST", "/api/v1/ra/orgs", body, &o); err != nil {
				return err
			}
			fmt.Printf("organisation %s (%s) added\n", o.ID, o.Name)
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "the organisation's name (required)")
	add.Flags().StringVar(&parent, "parent", "", "its superior organisation")
	add.Flags().BoolVar(&multi, "multi-level", false, "its applications also need the superior organisation's approval")
	add.MarkFlagRequired("name")

	list := &cobra.Command{
		Use: "list", Short: "List organisations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp struct {
				Items []struct {
					ID, Name, Parent string
					MultiLevel       bool `json:"multi_level"`
				} `json:"items"`
			}
			if err := c.do("GET", "/api/v1/ra/orgs", nil, &resp); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPARENT\tMULTI-LEVEL\tNAME")
			for _, o := range resp.Items {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", o.ID, o.Parent, o.MultiLevel, o.Name)
			}
			return tw.Flush()
		},
	}

	var e enrolment
	var id string
	addAdmin := &cobra.Command{
		Use:   "add-admin ORG --id ID --name NAME",
		Short: "Enrol a certificate administrator of an organisation: their credential signs the organisation's applications",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" {
				return errors.New("--id is required")
			}
			return e.enrol(&c, "/api/v1/ra/orgs/"+url.PathEscape(args[0])+"/admins", id, map[string]string{})
		},
	}
	addAdmin.Flags().StringVar(&id, "id", "", "the administrator's ID (lower-case letters, digits, '.', '_', '-')")
	e.register(addAdmin)

	cmd.AddCommand(add, list, addAdmin)
	return cmd
}

func staffCmd() *cobra.Command {
	var c apiClient
	cmd := &cobra.Command{Use: "staff", Short: "CA staff: administrators, RA officers, CA operators, service agents, auditors (admin credential)"}
	c.register(cmd)
	var e enrolment
	var role string
	add := &cobra.Command{
		Use:   "add ID --name NAME --role ROLE",
		Short: "Enrol a staff member and write their credential",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.enrol(&c, "/api/v1/ra/staff", args[0], map[string]string{"role": role})
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, ra_officer, ca_operator, service_agent, auditor, recovery_officer, support_engineer, engineer, technical_centre or supervisor (required)")
	add.MarkFlagRequired("role")
	e.register(add)
	cmd.AddCommand(add)
	return cmd
}
