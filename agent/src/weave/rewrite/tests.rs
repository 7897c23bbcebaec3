//! The rewrite rules, one combination of request and image per case.

use serde_json::json;

use super::*;

fn v(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

fn image(entrypoint: Option<Vec<String>>, cmd: Option<Vec<String>>) -> ImageCommand {
    ImageCommand { entrypoint, cmd }
}

/// An image with both ENTRYPOINT and CMD.
fn both() -> ImageCommand {
    image(v(&["/entry", "-x"]), v(&["serve", "--port=80"]))
}

fn argv(body: Value, img: &ImageCommand) -> Vec<String> {
    command(&body, img).unwrap()
}

#[test]
fn request_sets_neither_both_come_from_the_image() {
    let body = json!({"Image": "app"});
    assert_eq!(image_needed(&body).unwrap(), Some("app"));
    assert_eq!(argv(body, &both()), ["/entry", "-x", "serve", "--port=80"]);
}

#[test]
fn request_sets_cmd_only_the_image_entrypoint_stays() {
    let body = json!({"Image": "app", "Cmd": ["other"]});
    assert_eq!(image_needed(&body).unwrap(), Some("app"));
    assert_eq!(argv(body, &both()), ["/entry", "-x", "other"]);
}

#[test]
fn request_sets_entrypoint_only_the_image_cmd_is_not_used() {
    let body = json!({"Image": "app", "Entrypoint": ["/bin/sh", "-c"], "Cmd": null});
    assert_eq!(image_needed(&body).unwrap(), None);
    assert_eq!(argv(body, &both()), ["/bin/sh", "-c"]);
}

#[test]
fn request_sets_both_the_image_is_not_read() {
    let body = json!({"Image": "app", "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "exit 3"]});
    assert_eq!(image_needed(&body).unwrap(), None);
    assert_eq!(
        argv(body, &ImageCommand::default()),
        ["/bin/sh", "-c", "exit 3"]
    );
}

#[test]
fn string_forms_are_one_element_not_split() {
    let body = json!({"Entrypoint": "/bin/sh -c", "Cmd": "echo hi"});
    assert_eq!(argv(body, &both()), ["/bin/sh -c", "echo hi"]);
    let body = json!({"Image": "app", "Cmd": "top"});
    assert_eq!(argv(body, &both()), ["/entry", "-x", "top"]);
}

#[test]
fn empty_arrays_follow_dockers_merge() {
    // An empty Entrypoint clears the image's; an empty Cmd takes the image's.
    let body = json!({"Image": "app", "Entrypoint": []});
    assert_eq!(image_needed(&body).unwrap(), Some("app"));
    assert_eq!(argv(body, &both()), ["serve", "--port=80"]);
    let body = json!({"Image": "app", "Entrypoint": [], "Cmd": ["ls"]});
    assert_eq!(image_needed(&body).unwrap(), None);
    assert_eq!(argv(body, &both()), ["ls"]);
    let body = json!({"Image": "app", "Cmd": []});
    assert_eq!(argv(body, &both()), ["/entry", "-x", "serve", "--port=80"]);
    // A non-empty Entrypoint with an empty Cmd: no image Cmd either.
    let body = json!({"Image": "app", "Entrypoint": ["/e"], "Cmd": []});
    assert_eq!(argv(body, &both()), ["/e"]);
}

#[test]
fn entrypoint_of_one_empty_string_means_none() {
    // `docker run --entrypoint "" app echo hi`
    let body = json!({"Image": "app", "Entrypoint": [""], "Cmd": ["echo", "hi"]});
    assert_eq!(argv(body, &both()), ["echo", "hi"]);
    let body = json!({"Image": "app", "Entrypoint": [""]});
    assert_eq!(command(&body, &both()), Err(RewriteError::NoCommand));
}

#[test]
fn images_with_only_one_of_them() {
    let only_cmd = image(None, v(&["sh"]));
    let only_entry = image(v(&["/app"]), None);
    assert_eq!(argv(json!({}), &only_cmd), ["sh"]);
    assert_eq!(argv(json!({}), &only_entry), ["/app"]);
    assert_eq!(argv(json!({"Cmd": ["a"]}), &only_entry), ["/app", "a"]);
    assert_eq!(argv(json!({"Cmd": ["a"]}), &only_cmd), ["a"]);
    assert_eq!(
        command(&json!({}), &ImageCommand::default()),
        Err(RewriteError::NoCommand)
    );
}

#[test]
fn wrap_sets_the_entrypoint_cmd_and_bind() {
    let mut body = json!({"Image": "busybox", "Env": ["WEAVE_CIDR=10.255.0.51/8"],
        "Cmd": ["ip", "addr"], "Labels": {"a": "b"}});
    let cmd = command(&body, &ImageCommand::default()).unwrap();
    wrap(&mut body, cmd, "/usr/lib/agent/wait-for-net").unwrap();
    assert_eq!(body["Entrypoint"], json!(["/w/wait-for-net"]));
    assert_eq!(body["Cmd"], json!(["--", "ip", "addr"]));
    assert_eq!(
        body["HostConfig"]["Binds"],
        json!(["/usr/lib/agent/wait-for-net:/w/wait-for-net:ro"])
    );
    assert_eq!(body["Labels"], json!({"a": "b"}), "other fields stay");
}

#[test]
fn wrap_keeps_existing_binds_and_host_config() {
    let mut body = json!({"HostConfig": {"Binds": ["/a:/b"], "Memory": 5}});
    wrap(&mut body, vec!["x".into()], "/h").unwrap();
    assert_eq!(
        body["HostConfig"]["Binds"],
        json!(["/a:/b", "/h:/w/wait-for-net:ro"])
    );
    assert_eq!(body["HostConfig"]["Memory"], json!(5));
    let mut body = json!({"HostConfig": null});
    wrap(&mut body, vec!["x".into()], "/h").unwrap();
    assert_eq!(
        body["HostConfig"]["Binds"],
        json!(["/h:/w/wait-for-net:ro"])
    );
    let mut body = json!({"HostConfig": {"Binds": null}});
    wrap(&mut body, vec!["x".into()], "/h").unwrap();
    assert_eq!(
        body["HostConfig"]["Binds"],
        json!(["/h:/w/wait-for-net:ro"])
    );
}

#[test]
fn requests_come_from_env_and_bodies_without_are_untouched() {
    assert!(requests(&json!({"Image": "busybox"})).is_none());
    assert!(requests(&json!({"Env": null})).is_none());
    assert!(requests(&json!({"Env": ["A=1"]})).is_none());
    let got = requests(&json!({"Env": ["WEAVE_CIDR=10.1.0.2/16,net:10.2.0.0/24"]}));
    assert_eq!(got.unwrap().unwrap().len(), 2);
    let got = requests(&json!({"Env": ["WEAVE_CIDR=nonsense"]})).unwrap();
    assert!(matches!(got, Err(RewriteError::Cidr(_))));
}

#[test]
fn wrong_types_are_refused() {
    assert!(matches!(
        command(&json!({"Entrypoint": 5}), &both()),
        Err(RewriteError::BadField {
            field: "Entrypoint",
            ..
        })
    ));
    assert!(matches!(
        command(&json!({"Cmd": [1]}), &both()),
        Err(RewriteError::BadField { field: "Cmd", .. })
    ));
    assert!(matches!(
        requests(&json!({"Env": "WEAVE_CIDR=1"})),
        Some(Err(RewriteError::BadField { field: "Env", .. }))
    ));
    let mut body = json!({"HostConfig": {"Binds": "x"}});
    assert!(wrap(&mut body, vec!["x".into()], "/h").is_err());
    assert_eq!(
        wrap(&mut json!([]), vec!["x".into()], "/h"),
        Err(RewriteError::NotAnObject)
    );
}

#[test]
fn shared_network_namespaces_are_refused() {
    for mode in ["host", "container:web"] {
        let body = json!({"HostConfig": {"NetworkMode": mode}});
        let e = check_network_mode(&body).unwrap_err();
        assert!(e.to_string().contains(&format!("--network {mode}")), "{e}");
    }
    for body in [
        json!({}),
        json!({"HostConfig": null}),
        json!({"HostConfig": {"NetworkMode": "default"}}),
        json!({"HostConfig": {"NetworkMode": "bridge"}}),
        json!({"HostConfig": {"NetworkMode": "none"}}),
    ] {
        assert_eq!(check_network_mode(&body), Ok(()), "{body}");
    }
}
