package main

import "github.com/spf13/cobra"

// raCmd holds the RA client commands (issue: RA).
func raCmd() *cobra.Command {
	return &cobra.Command{Use: "ra", Short: "RA client commands", Hidden: true}
}

// auditCmd holds audit log commands (issue: RA).
func auditCmd() *cobra.Command {
	return &cobra.Command{Use: "audit", Short: "Audit log commands", Hidden: true}
}
