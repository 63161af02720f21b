package sidecar

import (
	"crypto/rand"
	"encoding/hex"
)

// newMessageID returns a random (version 4) UUID in its canonical text form. The client assigns message ids
// itself, before the first attempt, so that every retry of a call carries the same id and Segment de-duplicates.
func newMessageID() string {
	var u [16]byte
	// crypto/rand.Read never returns an error on the platforms Go supports (it panics instead).
	_, _ = rand.Read(u[:])
	u[6] = (u[6] & 0x0f) | 0x40 // version 4
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
	return string(out[:])
}
