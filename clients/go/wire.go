package sidecar

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	sidecarv1 "github.com/segment-sidecar/segment-sidecar/clients/go/gen/segment/sidecar/v1"
)

// encodedBatch is a BatchRequest in wire form. Batch and the Batcher encode each event once, when it is given to
// them, and append its bytes here; the Batch call sends these bytes as they are (batchCodec), and a retry re-sends
// the same bytes. The bytes are exactly what proto.Marshal writes for the equivalent BatchRequest: a BatchRequest is
// only its repeated `events` field (number 1), and a repeated message field is the concatenation of its entries.
type encodedBatch struct {
	wire []byte
}

// batchEventField is the field number of BatchRequest.events.
const batchEventField protowire.Number = 1

// appendBatchEvent converts e, with its final message id, into one `events` entry of a BatchRequest (the field's
// tag, the entry's length, then the BatchEvent's bytes) and appends it to buf. On error buf is returned unchanged.
func appendBatchEvent(buf []byte, e Event, id string) ([]byte, error) {
	be, err := e.toBatchEvent(id)
	if err != nil {
		return buf, err
	}
	size := proto.Size(be)
	if buf == nil {
		buf = make([]byte, 0, size+1+protowire.SizeVarint(uint64(size)))
	}
	buf = protowire.AppendTag(buf, batchEventField, protowire.BytesType)
	buf = protowire.AppendVarint(buf, uint64(size))
	// proto.Size has just computed and cached every nested size; UseCachedSize spares a second walk. Deterministic
	// orders a Struct's map entries, so the same event always encodes to the same bytes.
	return proto.MarshalOptions{Deterministic: true, UseCachedSize: true}.MarshalAppend(buf, be)
}

// batchCodec is the proto codec, except that an *encodedBatch request is sent as its bytes. Only the Batch call
// uses it; responses decode as usual.
type batchCodec struct{}

func (batchCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*encodedBatch); ok {
		return b.wire, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (batchCodec) Unmarshal(data []byte, v any) error {
	return proto.Unmarshal(data, v.(proto.Message))
}

func (batchCodec) Name() string { return "proto" }

// invokeBatch makes one Batch call with a pre-encoded request. Interceptors see the *encodedBatch, not a
// *BatchRequest.
func (c *Client) invokeBatch(
	ctx context.Context, b *encodedBatch, opts ...grpc.CallOption,
) (*sidecarv1.BatchResponse, error) {
	resp := new(sidecarv1.BatchResponse)
	opts = append([]grpc.CallOption{grpc.StaticMethod(), grpc.ForceCodec(batchCodec{})}, opts...)
	if err := c.conn.Invoke(ctx, sidecarv1.SidecarService_Batch_FullMethodName, b, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}
