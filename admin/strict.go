package admin

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// decodeStrict reads a JSON body into v: unknown fields are refused and
// every error names the field path.
func decodeStrict(r *http.Request, v any, limit int64) *apiError {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body could not be read"}
	}
	if int64(len(body)) > limit {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("the body is larger than %d bytes", limit)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(typedDecodeError(err, body, v))
	}
	if dec.More() {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "trailing data after the JSON object"}
	}
	return nil
}

// unknownFieldError is a member of a JSON object that the Go type it
// decodes into has no field for.
type unknownFieldError struct{ name string }

func (e *unknownFieldError) Error() string { return "unknown field " + quote(e.name) }

// typedDecodeError returns the error of decoding body into v (strictly) as
// a typed error: encoding/json gives an unknown field none, so an error
// of no type of encoding/json's is looked for in body as the first member
// v's type has no field for. The admin API's bodies decode no field with
// a custom unmarshaler, whose errors would have no type either.
func typedDecodeError(err error, body []byte, v any) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		inv    *json.InvalidUnmarshalError
	)
	if errors.As(err, &syntax) || errors.As(err, &typ) || errors.As(err, &inv) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if name, ok := firstUnknownField(dec, reflect.TypeOf(v)); ok {
		return &unknownFieldError{name: name}
	}
	return err
}

func jsonError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return badField(te.Field, "must be a JSON %s", jsonKind(te.Type.Kind().String()))
	}
	var uf *unknownFieldError
	if errors.As(err, &uf) {
		return badField(uf.name, "unknown field %q", uf.name)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is not valid JSON"}
	}
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: strings.TrimPrefix(err.Error(), "json: ")}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// firstUnknownField reads the next JSON value of dec as encoding/json
// decodes it into a value of type t, and returns the first object member,
// in the order of the text, that names no field of the struct it decodes
// into (matched as encoding/json matches: exactly, else without regard to
// case). Values of a type that decodes itself are skipped.
func firstUnknownField(dec *json.Decoder, t reflect.Type) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) {
			return "", skipValue(dec, tok)
		}
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return "", skipValue(dec, tok)
	}
	switch {
	case tok == json.Delim('{') && t.Kind() == reflect.Struct:
		fields := jsonFields(t)
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return "", false
			}
			name, _ := key.(string)
			ft, ok := fieldType(fields, name)
			if !ok {
				return name, true
			}
			if name, found := firstUnknownField(dec, ft); found {
				return name, true
			}
		}
		_, _ = dec.Token()
		return "", false
	case tok == json.Delim('{') && t.Kind() == reflect.Map:
		for dec.More() {
			if _, err := dec.Token(); err != nil {
				return "", false
			}
			if name, found := firstUnknownField(dec, t.Elem()); found {
				return name, true
			}
		}
		_, _ = dec.Token()
		return "", false
	case tok == json.Delim('[') && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for dec.More() {
			if name, found := firstUnknownField(dec, t.Elem()); found {
				return name, true
			}
		}
		_, _ = dec.Token()
		return "", false
	}
	return "", skipValue(dec, tok)
}

// skipValue reads the rest of the value tok opens; it returns false.
func skipValue(dec *json.Decoder, tok json.Token) bool {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return false
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return false
}

// jsonField is a field encoding/json decodes an object member into.
type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the fields of struct type t that encoding/json decodes
// into, by their JSON names, with those of embedded structs.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, jsonFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name, f.Type})
	}
	return out
}

// fieldType returns the type of the field an object member named name
// decodes into: the field of that name, else one whose name is equal
// without regard to case.
func fieldType(fields []jsonField, name string) (reflect.Type, bool) {
	for _, f := range fields {
		if f.name == name {
			return f.typ, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.typ, true
		}
	}
	return nil, false
}
