package sidecar

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// Region is the Segment region of the customer's workspace. A write key only works in its own region.
type Region = sidecarv1.Region

// The regions a call can name. RegionUnspecified lets the sidecar use its SIDECAR_DEFAULT_REGION.
const (
	RegionUnspecified = sidecarv1.Region_REGION_UNSPECIFIED
	RegionUS          = sidecarv1.Region_REGION_US
	RegionEU          = sidecarv1.Region_REGION_EU
)

// Event is one Segment Spec call: a Track, Identify, Page, Screen, Group or Alias value. Batch and Batcher take
// any mix of them. The interface is sealed: only this package's call types implement it.
type Event interface {
	// messageID returns the event's message id, or "" when the client must generate one.
	messageID() string
	// toBatchEvent converts the event, with its final message id, into the wire message.
	toBatchEvent(id string) (*sidecarv1.BatchEvent, error)
}

// Object fields (Properties, Traits, Context, Integrations) take:
//   - nil: the field is not sent;
//   - *structpb.Struct: sent as the request's google.protobuf.Struct field, as is;
//   - anything else json.Marshal accepts and that marshals to a JSON object (a map[string]any, a struct with json
//     tags, json.RawMessage): sent as the request's `*_json` bytes field. Integers stay integers this way, which a
//     Struct (doubles only) cannot promise beyond 2^53.

// Track records that a user performed an action.
type Track struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string    // optional; the client generates a UUIDv7 when empty
	Timestamp    time.Time // optional; the sidecar uses the time it received the call when zero
	Event        string    // the Spec event name, such as "Email Opened" (required)
	Properties   any
	Context      any
	Integrations any
}

// Identify ties a user to their traits.
type Identify struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string
	Timestamp    time.Time
	Traits       any
	Context      any
	Integrations any
}

// Page records a web page view.
type Page struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string
	Timestamp    time.Time
	Name         string
	Category     string
	Properties   any
	Context      any
	Integrations any
}

// Screen records a mobile screen view.
type Screen struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string
	Timestamp    time.Time
	Name         string
	Properties   any
	Context      any
	Integrations any
}

// Group associates a user with a group (a company, an account).
type Group struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string
	Timestamp    time.Time
	GroupID      string // required
	Traits       any
	Context      any
	Integrations any
}

// Alias merges a previous identity into a user id.
type Alias struct {
	WriteKey     string
	Region       Region
	UserID       string
	AnonymousID  string
	MessageID    string
	Timestamp    time.Time
	PreviousID   string // required
	Context      any
	Integrations any
}

// object is an encoded object field: at most one of its members is set.
type object struct {
	structValue *structpb.Struct
	jsonBytes   []byte
}

// encodeObject turns a user's object field into a Struct or JSON bytes, as described above Track.
func encodeObject(field string, value any) (object, error) {
	switch v := value.(type) {
	case nil:
		return object{}, nil
	case *structpb.Struct:
		return object{structValue: v}, nil
	case json.RawMessage:
		if len(v) == 0 {
			return object{}, nil
		}
		return object{jsonBytes: v}, nil
	}
	if m, ok := value.(map[string]any); ok {
		// Room for a typical property (a short key and value) each, so the buffer grows once at most.
		if b, ok := appendJSONObject(make([]byte, 0, 2+48*len(m)), m); ok {
			if m == nil {
				return object{}, nil
			}
			return object{jsonBytes: b}, nil
		}
	}
	b, err := json.Marshal(value)
	if err != nil {
		return object{}, fmt.Errorf("sidecar: %s: %w", field, err)
	}
	if string(b) == "null" {
		// A nil map or pointer behind an interface: nothing to send, like a nil field.
		return object{}, nil
	}
	if len(b) == 0 || b[0] != '{' {
		return object{}, fmt.Errorf("sidecar: %s must encode to a JSON object, got %.20s", field, b)
	}
	return object{jsonBytes: b}, nil
}

// common holds the encoded fields every request message repeats.
type common struct {
	timestamp    *timestamppb.Timestamp
	context      object
	integrations object
}

// encodeCommon encodes the timestamp, context and integrations shared by every call.
func encodeCommon(ts time.Time, ctxValue, integrations any) (common, error) {
	var c common
	var err error
	if !ts.IsZero() {
		c.timestamp = timestamppb.New(ts)
	}
	if c.context, err = encodeObject("context", ctxValue); err != nil {
		return c, err
	}
	if c.integrations, err = encodeObject("integrations", integrations); err != nil {
		return c, err
	}
	return c, nil
}

func (e Track) messageID() string { return e.MessageID }

func (e Track) toRequest(id string) (*sidecarv1.TrackRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	props, err := encodeObject("properties", e.Properties)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.TrackRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		Event: e.Event, Properties: props.structValue, PropertiesJson: props.jsonBytes,
	}, nil
}

func (e Track) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Track{Track: r}}, nil
}

func (e Identify) messageID() string { return e.MessageID }

func (e Identify) toRequest(id string) (*sidecarv1.IdentifyRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	traits, err := encodeObject("traits", e.Traits)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.IdentifyRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		Traits: traits.structValue, TraitsJson: traits.jsonBytes,
	}, nil
}

func (e Identify) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Identify{Identify: r}}, nil
}

func (e Page) messageID() string { return e.MessageID }

func (e Page) toRequest(id string) (*sidecarv1.PageRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	props, err := encodeObject("properties", e.Properties)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.PageRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		Name: e.Name, Category: e.Category, Properties: props.structValue, PropertiesJson: props.jsonBytes,
	}, nil
}

func (e Page) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Page{Page: r}}, nil
}

func (e Screen) messageID() string { return e.MessageID }

func (e Screen) toRequest(id string) (*sidecarv1.ScreenRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	props, err := encodeObject("properties", e.Properties)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.ScreenRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		Name: e.Name, Properties: props.structValue, PropertiesJson: props.jsonBytes,
	}, nil
}

func (e Screen) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Screen{Screen: r}}, nil
}

func (e Group) messageID() string { return e.MessageID }

func (e Group) toRequest(id string) (*sidecarv1.GroupRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	traits, err := encodeObject("traits", e.Traits)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.GroupRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		GroupId: e.GroupID, Traits: traits.structValue, TraitsJson: traits.jsonBytes,
	}, nil
}

func (e Group) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Group{Group: r}}, nil
}

func (e Alias) messageID() string { return e.MessageID }

func (e Alias) toRequest(id string) (*sidecarv1.AliasRequest, error) {
	c, err := encodeCommon(e.Timestamp, e.Context, e.Integrations)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.AliasRequest{
		WriteKey: e.WriteKey, Region: e.Region, UserId: e.UserID, AnonymousId: e.AnonymousID, MessageId: id,
		Timestamp: c.timestamp, Context: c.context.structValue, ContextJson: c.context.jsonBytes,
		Integrations: c.integrations.structValue, IntegrationsJson: c.integrations.jsonBytes,
		PreviousId: e.PreviousID,
	}, nil
}

func (e Alias) toBatchEvent(id string) (*sidecarv1.BatchEvent, error) {
	r, err := e.toRequest(id)
	if err != nil {
		return nil, err
	}
	return &sidecarv1.BatchEvent{Event: &sidecarv1.BatchEvent_Alias{Alias: r}}, nil
}
