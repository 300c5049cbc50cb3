// Package jsonscan finds, eight bytes at a time, the runs of JSON string
// text that need no escaping: the decoder and the encoder of the hot path
// go through those runs in one step and look at the other bytes one by one.
package jsonscan

import (
	"encoding/binary"
	"unsafe"
)

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// zeros has the high bit of each byte of x that is zero set, and maybe of
// bytes above one that is (a borrow): exact as to whether there is one.
func zeros(x uint64) uint64 { return (x - ones) &^ x }

// special is nonzero when some byte of x is not plain JSON string text:
// non-ASCII, below 0x20, '"' or '\\' (and, with html, '<', '>' or '&').
func special(x uint64, html bool) uint64 {
	m := x | (x-ones*0x20)&^x | zeros(x^(ones*'"')) | zeros(x^(ones*'\\'))
	if html {
		m |= zeros(x^(ones*'<')) | zeros(x^(ones*'>')) | zeros(x^(ones*'&'))
	}
	return m & highs
}

// plainByte reports whether c is plain JSON string text (see special).
func plainByte(c byte, html bool) bool {
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && !(html && (c == '<' || c == '>' || c == '&'))
}

// Plain returns the length of the longest prefix of b whose bytes are
// ASCII at or above 0x20 other than '"' and '\\' (and, with html, other
// than '<', '>' and '&'): text a JSON string holds as it is.
func Plain(b []byte, html bool) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if special(binary.LittleEndian.Uint64(b[i:]), html) != 0 {
			break
		}
	}
	for ; i < len(b) && plainByte(b[i], html); i++ {
	}
	return i
}

// PlainString is Plain for a string (read in place, never written).
func PlainString(s string, html bool) int {
	return Plain(unsafe.Slice(unsafe.StringData(s), len(s)), html)
}
