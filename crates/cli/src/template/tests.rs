use super::*;
use crate::format::json::StructValue;

fn data() -> Value {
    Value::from_json(
        br#"{"Id":"sha256:abc","RepoTags":["busybox:1.36","busybox:latest"],"Size":1982291,
            "Config":{"Env":null,"Cmd":["/bin/sh"],"Labels":{"b":"2","a":"1"},"Entrypoint":null},
            "RootFS":{"Layers":["sha256:l1","sha256:l2"]},"Empty":"","Ok":true}"#,
    )
    .unwrap()
}

fn run(src: &str) -> String {
    Template::parse("", src)
        .unwrap()
        .execute(&data(), Options::default())
        .unwrap()
}

fn run_err(src: &str, missing: MissingKey) -> String {
    let opts = Options {
        missing,
        header: false,
    };
    Template::parse("", src)
        .unwrap()
        .execute(&data(), opts)
        .unwrap_err()
}

#[test]
fn fields_and_text() {
    assert_eq!(
        run("id={{.Id}} size={{.Size}}"),
        "id=sha256:abc size=1982291"
    );
    assert_eq!(
        run("{{.Config.Cmd}} {{.RepoTags}}"),
        "[/bin/sh] [busybox:1.36 busybox:latest]"
    );
    assert_eq!(run("{{.Config.Env}} {{.Config.Labels}}"), "[] map[a:1 b:2]");
    assert_eq!(run("{{.Nope}}"), "<no value>");
}

#[test]
fn json_function() {
    assert_eq!(run("{{json .Config.Cmd}}"), r#"["/bin/sh"]"#);
    assert_eq!(run("{{json .Config.Env}}"), "null");
    assert_eq!(run("{{json .Config.Labels}}"), r#"{"b":"2","a":"1"}"#);
    assert_eq!(run("{{.Config.Cmd | json}}"), r#"["/bin/sh"]"#);
}

#[test]
fn control_structures() {
    assert_eq!(run("{{if .Ok}}yes{{else}}no{{end}}"), "yes");
    assert_eq!(
        run("{{if .Empty}}yes{{else if .Ok}}second{{else}}no{{end}}"),
        "second"
    );
    assert_eq!(
        run("{{range .RepoTags}}[{{.}}]{{end}}"),
        "[busybox:1.36][busybox:latest]"
    );
    assert_eq!(
        run("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}"),
        "0=busybox:1.36 1=busybox:latest "
    );
    assert_eq!(
        run("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}"),
        "a:1,b:2,"
    );
    assert_eq!(run("{{range .Config.Env}}x{{else}}none{{end}}"), "none");
    assert_eq!(run("{{with .Config}}{{.Cmd}}{{end}}"), "[/bin/sh]");
    assert_eq!(run("{{with .Empty}}x{{else}}empty{{end}}"), "empty");
    assert_eq!(run("{{$x := .Id}}{{$x}}"), "sha256:abc");
    assert_eq!(
        run("{{range .RepoTags}}{{$.Id}} {{end}}"),
        "sha256:abc sha256:abc "
    );
}

#[test]
fn trim_markers() {
    assert_eq!(run("a  {{- .Ok -}}  b"), "atrueb");
    assert_eq!(
        run("{{with .Config -}}\n  {{.Cmd}}\n{{- end}}"),
        "[/bin/sh]"
    );
}

#[test]
fn functions() {
    assert_eq!(
        run(r#"{{join .RepoTags ", "}}"#),
        "busybox:1.36, busybox:latest"
    );
    assert_eq!(
        run(r#"{{upper .Id}} {{lower "AbC"}} {{title "hello world-x"}}"#),
        "SHA256:ABC abc Hello World-X"
    );
    assert_eq!(
        run(r#"{{index .RepoTags 1}} {{index .Config.Labels "a"}} {{len .RepoTags}}"#),
        "busybox:latest 1 2"
    );
    assert_eq!(
        run(r#"{{split "a:b" ":"}} {{truncate .Id 6}} [{{pad "x" 1 2}}]"#),
        "[a b] sha256 [ x  ]"
    );
    assert_eq!(
        run(r#"{{if eq .Size 1982291}}big{{end}} {{if ne .Id "x"}}ne{{end}}"#),
        "big ne"
    );
    assert_eq!(
        run(r#"{{if and .Ok (not .Empty)}}both{{end}} {{or .Empty "dflt"}}"#),
        "both dflt"
    );
    assert_eq!(
        run(r#"{{printf "%-6s|%5d|%q" "ab" 42 "x"}}"#),
        r#"ab    |   42|"x""#
    );
    assert_eq!(
        run(r#"{{print "a" 1 2 "b"}}{{println "x" 1}}"#),
        "a1 2bx 1\n"
    );
    assert_eq!(
        run(r#"{{(index .RootFS.Layers 0)}} {{(index .RepoTags 0) | upper}}"#),
        "sha256:l1 BUSYBOX:1.36"
    );
}

#[test]
fn errors_read_like_go() {
    assert_eq!(
        run_err("{{.Nope}}", MissingKey::Error),
        r#"template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope""#
    );
    assert_eq!(
        Template::parse("", "{{.ID").unwrap_err(),
        "template: :1: unclosed action"
    );
    assert_eq!(
        Template::parse("", "{{foo .ID}}").unwrap_err(),
        r#"template: :1: function "foo" not defined"#
    );
    assert_eq!(
        Template::parse("", "{{if .A}}x").unwrap_err(),
        "template: :1: unexpected EOF"
    );
    assert_eq!(
        run_err("{{index .RepoTags 5}}", MissingKey::NoValue),
        "template: :1:2: executing \"\" at <index .RepoTags 5>: error calling index: index out of range: 5"
    );
    let row = Value::Struct(Box::new(StructValue {
        type_name: "*formatter.imageContext",
        fields: vec![("ID".into(), Value::str("abc"))],
        sorted_json: true,
        json: None,
    }));
    let t = Template::parse("", "x\n{{.ID}} {{.Nope}}").unwrap();
    assert_eq!(
        t.execute(&row, Options::default()).unwrap_err(),
        r#"template: :2:10: executing "" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext"#
    );
}

#[test]
fn header_mode_keeps_names() {
    let header = Value::Object(vec![("Repository".into(), Value::str("REPOSITORY"))]);
    let t = Template::parse("", "{{lower .Repository}}|{{json .Repository}}|{{.Other}}").unwrap();
    let opts = Options {
        missing: MissingKey::Empty,
        header: true,
    };
    assert_eq!(t.execute(&header, opts).unwrap(), "REPOSITORY|REPOSITORY|");
}

#[test]
fn function_glued_to_a_field_is_refused_like_go() {
    assert_eq!(
        Template::parse("", "{{json.}}").unwrap_err(),
        "template: :1: unexpected <.> in operand"
    );
    let t = Template::parse("", "{{json.Config.Env}}").unwrap();
    assert_eq!(
        t.execute(&data(), Options::default()).unwrap_err(),
        "template: :1:2: executing \"\" at <json>: wrong number of args for json: want 1 got 0"
    );
    assert!(Template::parse("", "{{json .Config}}").is_ok());
}
