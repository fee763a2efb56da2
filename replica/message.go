package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/certcenter/certcenter/store"
)

// Headers of a change-log message. Nats-Msg-Id is JetStream's own.
const (
	hdrMsgID = "Nats-Msg-Id"
	hdrPrev  = "Certcenter-Prev"
)

// message is one change-log entry as it travels: the entry's sequence, the
// sequence of the message published before it (0: none), the entry's
// commit time on the primary, and the records it names.
type message struct {
	Seq     uint64         `json:"seq"`
	Prev    uint64         `json:"prev"`
	Time    time.Time      `json:"time"`
	Kind    store.LogKind  `json:"kind"`
	Records []store.Record `json:"records"`
}

// maxRecords bounds the records one message may carry.
const maxRecords = 1024

func (m *message) natsMsg(subject string) (*nats.Msg, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding change-log message %d: %w", m.Seq, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	msg.Header.Set(hdrMsgID, strconv.FormatUint(m.Seq, 10))
	msg.Header.Set(hdrPrev, strconv.FormatUint(m.Prev, 10))
	return msg, nil
}

// decodeMessage parses a message's body and checks it against its
// headers: a replica applies nothing it cannot read whole.
func decodeMessage(data []byte, msgID, prev string) (*message, error) {
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding change-log message: %w", err)
	}
	if m.Seq == 0 {
		return nil, errors.New("change-log message without a sequence")
	}
	if m.Prev >= m.Seq {
		return nil, fmt.Errorf("change-log message %d names a later predecessor %d", m.Seq, m.Prev)
	}
	if id, err := strconv.ParseUint(msgID, 10, 64); err != nil || id != m.Seq {
		return nil, fmt.Errorf("change-log message %d has message ID %q", m.Seq, msgID)
	}
	if p, err := strconv.ParseUint(prev, 10, 64); err != nil || p != m.Prev {
		return nil, fmt.Errorf("change-log message %d has predecessor header %q, body %d", m.Seq, prev, m.Prev)
	}
	if len(m.Records) > maxRecords {
		return nil, fmt.Errorf("change-log message %d carries %d records, more than %d", m.Seq, len(m.Records), maxRecords)
	}
	for i, r := range m.Records {
		if len(r.Key) == 0 {
			return nil, fmt.Errorf("change-log message %d: record %d has no key", m.Seq, i)
		}
	}
	return &m, nil
}
