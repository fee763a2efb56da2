package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// RA notification outbox key layout:
//
//	ra\0ntf\0<id>                          notification (IDs sort in creation order)
//	i\0rantfpending\0<id>                  notification still to be delivered
var (
	pRANotification = []byte("ra\x00ntf\x00")
	pIdxRAPending   = []byte("i\x00rantfpending\x00")
)

// Notification statuses.
const (
	// NotificationPending waits for a configured channel to take it.
	NotificationPending = "pending"
	// NotificationSent was taken by every configured channel.
	NotificationSent = "sent"
	// NotificationFailed was given up after its attempts.
	NotificationFailed = "failed"
	// NotificationHeld has no channel to go to: it is kept to be read
	// through the API and the CLI.
	NotificationHeld = "held"
)

// RANotification is one message of the RA (a renewal reminder, a renewed
// certificate's download link), written in the transaction of the event
// that caused it and kept whatever its delivery, so nothing is lost when a
// channel is down or none is configured.
type RANotification struct {
	ID         string   `json:"id"`
	Event      string   `json:"event"`
	Org        string   `json:"org,omitempty"`
	Request    string   `json:"request,omitempty"`
	Serial     string   `json:"serial,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	// Subject and Body are the e-mail; Payload the webhook's JSON.
	Subject string          `json:"subject"`
	Body    string          `json:"body"`
	Payload json.RawMessage `json:"payload"`
	// Channels maps each channel that applies (webhook, email) to its
	// delivery state: pending, sent.
	Channels  map[string]string `json:"channels,omitempty"`
	Status    string            `json:"status"`
	Attempts  int               `json:"attempts,omitempty"`
	LastError string            `json:"last_error,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	SentAt    time.Time         `json:"sent_at,omitzero"`
}

// PutRANotification writes a notification and keeps the pending index.
func (tx *Tx) PutRANotification(n *RANotification) error {
	if n.ID == "" {
		return fmt.Errorf("notification without ID")
	}
	v, err := encode(n)
	if err != nil {
		return fmt.Errorf("encoding notification %s: %w", n.ID, err)
	}
	if err := tx.set(cat(pRANotification, []byte(n.ID)), v); err != nil {
		return fmt.Errorf("writing notification %s: %w", n.ID, err)
	}
	k := cat(pIdxRAPending, []byte(n.ID))
	if n.Status == NotificationPending {
		return tx.set(k, nil)
	}
	if err := tx.txn.Delete(k); err != nil {
		return fmt.Errorf("updating pending notifications: %w", err)
	}
	return nil
}

// RANotification reads a notification.
func (tx *Tx) RANotification(id string) (*RANotification, error) {
	var n RANotification
	return &n, tx.readRA(pRANotification, id, &n, "notification")
}

// EachRANotification streams notifications in creation order, from the
// first with an ID after after ("" from the start).
func (tx *Tx) EachRANotification(after string, fn func(*RANotification) error) error {
	var start []byte
	if after != "" {
		start = append(cat(pRANotification, []byte(after)), 0)
	}
	return tx.scan(pRANotification, start, true, func(k, v []byte) error {
		var n RANotification
		if err := decode(v, &n); err != nil {
			return fmt.Errorf("decoding notification %q: %w", k[len(pRANotification):], err)
		}
		return fn(&n)
	})
}

// PendingRANotifications streams the IDs of notifications to deliver.
func (tx *Tx) PendingRANotifications(fn func(id string) error) error {
	return tx.scan(pIdxRAPending, nil, false, func(k, _ []byte) error {
		return fn(string(k[len(pIdxRAPending):]))
	})
}
