package httpapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// checkFieldCase refuses an object key that names a field of dst's type
// only in another case ("By" for "by"): encoding/json takes it for the
// field, so {"by":"x","By":"y"} would be read as "y" where a proxy or an
// audit reading the exact key sees "x". data is one JSON value that
// encoding/json reads into dst without error.
func checkFieldCase(data []byte, dst any) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil // the decoding into dst says what is wrong
	}
	return walkFieldCase(v, reflect.TypeOf(dst), "")
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func walkFieldCase(v any, t reflect.Type, at string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// A type that reads itself decides its own keys.
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil
	}
	switch v := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, e := range v {
				if err := walkFieldCase(e, t.Elem(), join(at, k)); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields := fieldsOf(t)
			for k, e := range v {
				ft, ok := fields[k]
				if !ok {
					for name := range fields {
						if strings.EqualFold(name, k) {
							return fmt.Errorf("field %q: the field is %q (names are case-sensitive)", join(at, k), join(at, name))
						}
					}
					continue // unknown: the decoder refuses it
				}
				if err := walkFieldCase(e, ft, join(at, k)); err != nil {
					return err
				}
			}
		}
	case []any:
		if k := t.Kind(); k == reflect.Slice || k == reflect.Array {
			for i, e := range v {
				if err := walkFieldCase(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

// fieldsOf maps the JSON names of t's fields, those of embedded structs
// included, to their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, ok := fields[name]; !ok { // the shallower field wins, as encoding/json has it
				fields[name] = ft
			}
		}
	}
	add(t)
	fieldCache.Store(t, fields)
	return fields
}

var fieldCache sync.Map // reflect.Type → map[string]reflect.Type
