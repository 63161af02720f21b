package sidecar

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation names a field of an event that broke one of the sidecar's rules.
type FieldViolation struct {
	// Field is a path into the event, such as "user_id" or "properties.revenue".
	Field string
	// Description says what is wrong, for a person.
	Description string
}

// Warning is a finding that did not stop the event, such as a Spec property with the wrong type.
type Warning struct {
	Code    string // stable and machine-readable, such as "spec.property_type"
	Field   string // the path the warning is about
	Message string // what is wrong and what to send instead
}

// InvalidEventError is returned when the sidecar rejects an event (INVALID_ARGUMENT, or a per-event rejection in
// a Batch). Retrying the same event can never succeed, so the client never does. Use errors.As to get it:
//
//	var invalid *sidecar.InvalidEventError
//	if errors.As(err, &invalid) { log.Print(invalid.Violations) }
type InvalidEventError struct {
	// MessageID is the id the rejected event was sent with.
	MessageID string
	// Code is codes.InvalidArgument, or codes.FailedPrecondition for a Batch event whose write key needs OAuth
	// credentials the sidecar lacks.
	Code codes.Code
	// Reason is the sidecar's message.
	Reason string
	// Violations lists every broken rule, in the sidecar's order.
	Violations []FieldViolation
}

// Error names the rejected event and its field violations (the sidecar's reason when it gave none).
func (e *InvalidEventError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sidecar: event %q rejected (%s)", e.MessageID, e.Code)
	if len(e.Violations) == 0 {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	for i, v := range e.Violations {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s: %s", sep, v.Field, v.Description)
	}
	return b.String()
}

// GRPCStatus lets status.Code and status.FromError see the rejection's gRPC code.
func (e *InvalidEventError) GRPCStatus() *status.Status {
	return status.New(e.Code, e.Reason)
}

// invalidEventFromStatus builds the typed error from an INVALID_ARGUMENT status and its BadRequest details.
func invalidEventFromStatus(st *status.Status, messageID string) *InvalidEventError {
	e := &InvalidEventError{MessageID: messageID, Code: st.Code(), Reason: st.Message()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				e.Violations = append(e.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}
