//! Data tables: which documents are policies (and the reason when not), and what a set of
//! policies decides for requests.

use super::*;

fn bucket(name: &str) -> Kind {
    Kind::Bucket(name.to_string())
}

#[test]
fn documents_checked_as_aws_checks_them() {
    let identity = Kind::Identity;
    let photos = bucket("photos");
    let ok = "";
    // (kind, document, "" when accepted or a part of the reason)
    let table: &[(&Kind, &str, &str)] = &[
        (
            &identity,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#,
            ok,
        ),
        (&identity, r#"{"Statement":{"Effect":"Deny","NotAction":["s3:Get*"],"NotResource":"*"}}"#, ok),
        (
            &photos,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"AWSConsoleStmt-1","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::photos/*","arn:aws:s3:::photos"]}]}"#,
            ok,
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::buckets:user/alice"]},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*","Condition":{"IpAddress":{"aws:SourceIp":["127.0.0.0/8"]},"Bool":{"aws:SecureTransport":false}}}]}"#,
            ok,
        ),
        (&identity, "not json", "not valid JSON"),
        (&identity, "[]", "JSON object"),
        (&identity, r#"{"Version":"2012-10-17"}"#, "Missing required field Statement"),
        (&identity, r#"{"Version":"2012-10-17","Statement":[]}"#, "Missing required field Statement"),
        (
            &identity,
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
            "Version",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Conditon":{}}]}"#,
            "Unknown field Conditon in statement 1",
        ),
        (&identity, r#"{"Statment":[]}"#, "Unknown field Statment"),
        (&identity, r#"{"Statement":[{"Effect":"Permit","Action":"s3:*","Resource":"*"}]}"#, "Effect in statement 1"),
        (&identity, r#"{"Statement":[{"Action":"s3:*","Resource":"*"}]}"#, "Missing required field Effect"),
        (&identity, r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#, "Missing required field Action"),
        (&identity, r#"{"Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#, "Missing required field Resource"),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}]}"#,
            "both Action and NotAction",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObjects","Resource":"*"}]}"#,
            "invalid action: s3:GetObjects",
        ),
        (&identity, r#"{"Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#, "invalid action"),
        (&identity, r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#, "non-empty list"),
        (&identity, r#"{"Statement":[{"Effect":"Allow","Action":[1],"Resource":"*"}]}"#, "must be strings"),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:ec2:::x"}]}"#,
            "invalid resource",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
            "does not name a Principal",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}]}"#,
            "Missing required field Principal",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other/*"}]}"#,
            "invalid resource: arn:aws:s3:::other/*",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::photos-2/*"}]}"#,
            "invalid resource",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
            "invalid resource",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"x"},"Action":"s3:*","Resource":"arn:aws:s3:::photos"}]}"#,
            "NotPrincipal is allowed only",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"s3:*","Resource":"arn:aws:s3:::photos"}]}"#,
            "Invalid principal in policy: Service",
        ),
        (
            &photos,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:user/a*"},"Action":"s3:*","Resource":"arn:aws:s3:::photos"}]}"#,
            "Invalid principal",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLikes":{"s3:prefix":"a"}}}]}"#,
            "Unknown condition operator StringLikes",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}"#,
            "Invalid value",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1/8"}}}]}"#,
            "Invalid value",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"ec2:Region":"x"}}}]}"#,
            "invalid condition key",
        ),
        (
            &identity,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"s3:prefix":{"a":1}}}}]}"#,
            "must be scalars",
        ),
    ];
    for (index, &(kind, document, expected)) in table.iter().enumerate() {
        match (Policy::parse(document, kind), expected) {
            (Ok(_), "") => {}
            (Ok(_), reason) => panic!("row {index}: accepted, expected a refusal with {reason:?}: {document}"),
            (Err(e), "") => panic!("row {index}: refused ({e}): {document}"),
            (Err(e), reason) => assert!(e.0.contains(reason), "row {index}: {:?} does not say {reason:?}", e.0),
        }
    }
}

#[test]
fn size_limits() {
    let statement = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#;
    let with = |n: usize| format!(r#"{{"Statement":[{}]}}"#, vec![statement; n].join(","));
    let small = with(10);
    assert!(Policy::parse(&small, &Kind::Identity).is_ok());
    let large = with(6 * 1024 / statement.len() + 1);
    let refused = Policy::parse(&large, &Kind::Identity).unwrap_err();
    assert!(refused.0.contains("6144 characters"), "{refused}");
    // White space does not count for identity policies.
    let spaced = small.replace(',', &format!(",{}", " ".repeat(1000)));
    assert!(Policy::parse(&spaced, &Kind::Identity).is_ok());
    let bucket_statement =
        r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#;
    let bucket_policy = |n: usize| format!(r#"{{"Statement":[{}]}}"#, vec![bucket_statement; n].join(","));
    assert!(Policy::parse(&bucket_policy(150), &bucket("photos")).is_ok());
    let refused = Policy::parse(&bucket_policy(250), &bucket("photos")).unwrap_err();
    assert!(refused.0.contains("20480 bytes"), "{refused}");
}

fn user(name: &str) -> Principal {
    Principal::User { arn: format!("arn:aws:iam::buckets:user/{name}"), canonical_id: format!("canonical-{name}") }
}

#[test]
fn decisions() {
    let alice = user("alice");
    let bob = user("bob");
    let anonymous = Principal::Anonymous;
    let identity = |document: &str| Policy::parse(document, &Kind::Identity).unwrap();
    let photos = |document: &str| Policy::parse(document, &bucket("photos")).unwrap();

    let read_photos = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}]}"#,
    );
    let deny_private = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::photos/private/*"}]}"#,
    );
    let home = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::homes/${aws:username}/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::homes",
             "Condition":{"StringLike":{"s3:prefix":["${aws:username}/*","${aws:username}"]}}}]}"#,
    );
    let everything_but_delete =
        identity(r#"{"Statement":[{"Effect":"Allow","NotAction":"s3:Delete*","NotResource":"arn:aws:s3:::audit/*"}]}"#);
    let old_version = identity(
        r#"{"Version":"2008-10-17","Statement":[
        {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::homes/${aws:username}/*"}]}"#,
    );
    let public_read = photos(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/public/*"},
            {"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*",
             "Condition":{"NotIpAddress":{"aws:SourceIp":["127.0.0.0/8","::1"]}}}]}"#,
    );
    let only_bob = photos(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::buckets:user/bob"]},"Action":"s3:PutObject","Resource":"arn:aws:s3:::photos/uploads/*"},
            {"Effect":"Deny","NotPrincipal":{"CanonicalUser":"canonical-bob"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::photos/*"}]}"#,
    );

    let local = Context::default().with("aws:SourceIp", "127.0.0.1");
    let remote = Context::default().with("aws:SourceIp", "198.51.100.7");
    let as_alice = Context::default().with("aws:username", "alice").with("aws:SourceIp", "127.0.0.1");
    let listing = |prefix: &str| as_alice.clone().with("s3:prefix", prefix);
    let alice_home = listing("alice/docs/");
    let bob_home = listing("bob/");
    let nobody = Context::default();

    use Decision::*;
    /// (policies, principal, action, resource, context, decision)
    type Row<'a> = (Vec<&'a Policy>, &'a Principal, &'a str, &'a str, &'a Context, Decision);
    let table: Vec<Row> = vec![
        (vec![&read_photos], &alice, "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", &local, Allow),
        (vec![&read_photos], &alice, "S3:GETOBJECT", "arn:aws:s3:::photos/cat.jpg", &local, Allow),
        (vec![&read_photos], &alice, "s3:PutObject", "arn:aws:s3:::photos/cat.jpg", &local, ImplicitDeny),
        (vec![&read_photos], &alice, "s3:GetObject", "arn:aws:s3:::other/cat.jpg", &local, ImplicitDeny),
        (vec![&read_photos], &alice, "s3:ListBucket", "arn:aws:s3:::photos", &local, Allow),
        // Explicit Deny wins over an Allow in another policy, whichever comes first.
        (
            vec![&read_photos, &deny_private],
            &alice,
            "s3:GetObject",
            "arn:aws:s3:::photos/private/x",
            &local,
            ExplicitDeny,
        ),
        (
            vec![&deny_private, &read_photos],
            &alice,
            "s3:GetObject",
            "arn:aws:s3:::photos/private/x",
            &local,
            ExplicitDeny,
        ),
        (vec![&deny_private, &read_photos], &alice, "s3:GetObject", "arn:aws:s3:::photos/private*x", &local, Allow),
        (vec![&deny_private], &alice, "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", &local, ImplicitDeny),
        (vec![], &alice, "s3:GetObject", "arn:aws:s3:::photos/cat.jpg", &local, ImplicitDeny),
        // Policy variables, in resources and in condition values.
        (vec![&home], &alice, "s3:PutObject", "arn:aws:s3:::homes/alice/notes", &as_alice, Allow),
        (vec![&home], &alice, "s3:PutObject", "arn:aws:s3:::homes/bob/notes", &as_alice, ImplicitDeny),
        (vec![&home], &alice, "s3:PutObject", "arn:aws:s3:::homes/alice/notes", &nobody, ImplicitDeny),
        (vec![&home], &alice, "s3:ListBucket", "arn:aws:s3:::homes", &alice_home, Allow),
        (vec![&home], &alice, "s3:ListBucket", "arn:aws:s3:::homes", &bob_home, ImplicitDeny),
        (vec![&home], &alice, "s3:ListBucket", "arn:aws:s3:::homes", &as_alice, ImplicitDeny),
        // 2008-10-17: `${…}` is text.
        (vec![&old_version], &alice, "s3:GetObject", "arn:aws:s3:::homes/alice/x", &as_alice, ImplicitDeny),
        (vec![&old_version], &alice, "s3:GetObject", "arn:aws:s3:::homes/${aws:username}/x", &as_alice, Allow),
        // NotAction and NotResource.
        (vec![&everything_but_delete], &alice, "s3:PutObject", "arn:aws:s3:::any/x", &local, Allow),
        (vec![&everything_but_delete], &alice, "s3:DeleteObject", "arn:aws:s3:::any/x", &local, ImplicitDeny),
        (vec![&everything_but_delete], &alice, "s3:GetObject", "arn:aws:s3:::audit/x", &local, ImplicitDeny),
        // Bucket policies: anonymous and named principals, conditions.
        (vec![&public_read], &anonymous, "s3:GetObject", "arn:aws:s3:::photos/public/a.png", &local, Allow),
        (vec![&public_read], &anonymous, "s3:GetObject", "arn:aws:s3:::photos/private/a.png", &local, ImplicitDeny),
        (vec![&public_read], &anonymous, "s3:PutObject", "arn:aws:s3:::photos/public/a.png", &local, ImplicitDeny),
        (vec![&public_read], &anonymous, "s3:GetObject", "arn:aws:s3:::photos/public/a.png", &remote, ExplicitDeny),
        (vec![&public_read, &read_photos], &alice, "s3:GetObject", "arn:aws:s3:::photos/x", &remote, ExplicitDeny),
        (vec![&public_read, &read_photos], &alice, "s3:GetObject", "arn:aws:s3:::photos/x", &local, Allow),
        (vec![&only_bob], &bob, "s3:PutObject", "arn:aws:s3:::photos/uploads/a", &local, Allow),
        (vec![&only_bob], &alice, "s3:PutObject", "arn:aws:s3:::photos/uploads/a", &local, ImplicitDeny),
        (vec![&only_bob], &anonymous, "s3:PutObject", "arn:aws:s3:::photos/uploads/a", &local, ImplicitDeny),
        (
            vec![&only_bob, &everything_but_delete],
            &alice,
            "s3:DeleteObject",
            "arn:aws:s3:::photos/a",
            &local,
            ExplicitDeny,
        ),
        (vec![&only_bob], &anonymous, "s3:DeleteObject", "arn:aws:s3:::photos/a", &local, ExplicitDeny),
        (vec![&only_bob], &bob, "s3:DeleteObject", "arn:aws:s3:::photos/a", &local, ImplicitDeny),
    ];
    for (index, (policies, principal, action, resource, context, expected)) in table.into_iter().enumerate() {
        let request = Request { principal, action, resource, context };
        assert_eq!(decide(policies, &request), expected, "row {index}: {action} on {resource} by {principal:?}");
    }
}

#[test]
fn nothing_in_a_request_breaks_evaluation() {
    let policy = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*",
            "Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"NumericLessThanEquals":{"s3:max-keys":"100"},
            "IpAddress":{"aws:SourceIp":"127.0.0.0/8"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}}]}"#,
        &Kind::Identity,
    )
    .unwrap();
    let odd = ["", "${", "}", "*", "\u{0}", "é", "not-a-date", "-1e400", "::::::", "999.1.1.1"];
    for value in odd {
        let context = Context::default()
            .with("aws:username", value)
            .with("aws:CurrentTime", value)
            .with("s3:max-keys", value)
            .with("aws:SourceIp", value)
            .with("aws:PrincipalArn", value);
        let request = Request {
            principal: &Principal::Anonymous,
            action: value,
            resource: &format!("arn:aws:s3:::b/{value}/x"),
            context: &context,
        };
        // Whatever it decides, it decides.
        let _ = decide([&policy], &request);
    }
    let fine = Context::default()
        .with("aws:username", "u")
        .with("aws:CurrentTime", "2026-12-04T00:00:00Z")
        .with("s3:max-keys", "10")
        .with("aws:SourceIp", "127.0.0.9")
        .with("aws:PrincipalArn", "arn:aws:iam::buckets:user/u");
    let request = Request {
        principal: &Principal::Anonymous,
        action: "s3:ListBucket",
        resource: "arn:aws:s3:::b/u/x",
        context: &fine,
    };
    assert_eq!(decide([&policy], &request), Decision::Allow);
    let late = fine.clone().with("aws:CurrentTime", "2031-01-01T00:00:00Z");
    let late = Context(late.0.into_iter().map(|(k, mut v)| (k, vec![v.pop().unwrap()])).collect());
    assert_eq!(decide([&policy], &Request { context: &late, ..request }), Decision::ImplicitDeny);
}

#[test]
fn public_policies_as_block_public_access_judges_them() {
    let bucket = Kind::Bucket("site".into());
    let statement = |principal: &str, condition: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"{condition}}}]}}"#
        )
    };
    let table = [
        (statement(r#""*""#, ""), true),
        (statement(r#"{"AWS":"*"}"#, ""), true),
        (statement(r#"{"AWS":"arn:aws:iam::buckets:user/alice"}"#, ""), false),
        (statement(r#""*""#, r#","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#), false),
        (statement(r#""*""#, r#","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#), true),
        (statement(r#""*""#, r#","Condition":{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}"#), true),
        (statement(r#""*""#, r#","Condition":{"StringLike":{"aws:UserAgent":"curl*"}}"#), true),
        (statement(r#""*""#, r#","Condition":{"StringEquals":{"aws:userid":"abc"}}"#), false),
        (statement(r#""*""#, r#","Condition":{"StringEquals":{"aws:userid":"a*"}}"#), true),
    ];
    for (document, public) in table {
        assert_eq!(Policy::parse(&document, &bucket).unwrap().is_public(), public, "{document}");
    }
    let deny_everyone = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::site/*"}]}"#;
    assert!(!Policy::parse(deny_everyone, &bucket).unwrap().is_public());
}
