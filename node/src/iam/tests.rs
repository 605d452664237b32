use super::*;
use crate::storage::testing::open_two_sets;

async fn open(dir: &std::path::Path) -> (Arc<Store>, Arc<Iam>) {
    let store = open_two_sets(dir);
    store.ensure_system_buckets().await;
    let iam = Iam::open(store.clone(), b"cluster secret").await;
    (store, iam)
}

#[tokio::test]
async fn users_keys_groups_and_policies_persist_in_every_set() {
    let dir = tempfile::tempdir().unwrap();
    let (store, iam) = open(dir.path()).await;
    let alice = iam.add_user("alice").await.unwrap();
    assert_eq!(alice.canonical_id.len(), 64);
    assert_eq!(alice.arn, "arn:aws:iam::buckets:user/alice");
    assert!(matches!(iam.add_user("alice").await, Err(IamError::AlreadyExists(_))));
    assert!(matches!(iam.add_user("no spaces").await, Err(IamError::Invalid(_))));
    assert!(matches!(iam.add_user(&"x".repeat(65)).await, Err(IamError::Invalid(_))));

    let key = iam.create_key("alice", None).await.unwrap();
    assert_eq!(key.access_key.len(), 20);
    assert_eq!(key.secret_key.len(), 40);
    assert_eq!(iam.key(&key.access_key), KeyLookup::Valid { secret: key.secret_key.clone() });
    assert!(matches!(iam.create_key("bob", None).await, Err(IamError::NoSuchUser(_))));
    assert!(matches!(iam.create_key("alice", Some(1)).await, Err(IamError::Invalid(_))));

    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}]}"#;
    iam.put_policy("photos", document, false).await.unwrap();
    assert!(matches!(iam.put_policy("photos", document, false).await, Err(IamError::AlreadyExists(_))));
    assert!(matches!(iam.put_policy("bad", r#"{"Statement":[]}"#, false).await, Err(IamError::MalformedPolicy(_))));
    assert!(matches!(iam.put_policy("readonly", document, true).await, Err(IamError::PolicyInUse(_))));
    iam.add_group("viewers").await.unwrap();
    let change = buckets_api::iam::MemberChange { add: vec!["alice".into()], remove: vec![] };
    iam.change_members("viewers", &change).await.unwrap();
    let to_group = buckets_api::iam::Attachment { group: Some("viewers".into()), user: None };
    iam.attach("photos", &to_group, true).await.unwrap();
    let to_user = buckets_api::iam::Attachment { user: Some("alice".into()), group: None };
    iam.attach("readonly", &to_user, true).await.unwrap();
    assert!(matches!(iam.remove_policy("photos").await, Err(IamError::PolicyInUse(_))));
    let caller = iam.caller(&key.access_key).unwrap();
    assert_eq!((caller.name.as_str(), caller.policies.len()), ("alice", 2));

    // Another node reading the same drives sees all of it, secrets too (same cluster
    // secret); each set holds the same revision.
    let other = Iam::open(store.clone(), b"cluster secret").await;
    assert_eq!(other.user("alice").unwrap(), iam.user("alice").unwrap());
    assert_eq!(other.key(&key.access_key), KeyLookup::Valid { secret: key.secret_key.clone() });
    assert_eq!(other.group("viewers").unwrap().members, vec!["alice".to_string()]);
    let revisions: Vec<u64> = futures::future::join_all(store.sets().iter().map(read_copy))
        .await
        .into_iter()
        .map(|c| c.unwrap().unwrap().revision)
        .collect();
    assert_eq!(revisions, vec![revisions[0]; 2]);
    // Another cluster secret opens no secret.
    let stranger = Iam::open(store.clone(), b"another secret").await;
    assert_eq!(stranger.key(&key.access_key), KeyLookup::Unknown);

    // Disabled users' keys and removed keys stop signing, on the other node after a refresh.
    iam.set_enabled("alice", false).await.unwrap();
    other.refresh().await.unwrap();
    assert_eq!(other.key(&key.access_key), KeyLookup::Disabled);
    iam.set_enabled("alice", true).await.unwrap();
    iam.remove_key(&key.access_key).await.unwrap();
    other.refresh().await.unwrap();
    assert_eq!(other.key(&key.access_key), KeyLookup::Unknown);
    assert!(matches!(iam.remove_key(&key.access_key).await, Err(IamError::NoSuchKey(_))));

    // Removing a user takes it out of its groups.
    iam.remove_user("alice").await.unwrap();
    assert!(iam.group("viewers").unwrap().members.is_empty());
    assert!(matches!(iam.user("alice"), Err(IamError::NoSuchUser(_))));
}

#[tokio::test]
async fn expired_keys_are_refused_and_a_set_that_missed_changes_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (store, iam) = open(dir.path()).await;
    iam.add_user("bob").await.unwrap();
    let key = iam.create_key("bob", Some(crate::clock::unix_seconds() + 2)).await.unwrap();
    assert!(matches!(iam.key(&key.access_key), KeyLookup::Valid { .. }));

    // Set 1 loses its copy (a set added since, or wiped): the newest copy still rules,
    // and the refresh writes it back.
    let set = store.sets()[1].clone();
    set.delete_object(IAM_BUCKET, DOC_KEY).await.unwrap();
    assert!(read_copy(&set).await.unwrap().is_none());
    assert!(iam.refresh().await.unwrap(), "set 1 is behind");
    iam.sync().await.unwrap();
    assert!(!iam.refresh().await.unwrap());
    assert_eq!(read_copy(&set).await.unwrap().unwrap(), read_copy(&store.sets()[0]).await.unwrap().unwrap());

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(iam.key(&key.access_key), KeyLookup::Expired);
    assert!(iam.users()[0].keys[0].expires.is_some());
}

#[tokio::test]
async fn at_most_ten_keys_and_names_as_iam_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, iam) = open(dir.path()).await;
    iam.add_user("carol+ci@example.com").await.unwrap();
    for _ in 0..MAX_KEYS_PER_USER {
        iam.create_key("carol+ci@example.com", None).await.unwrap();
    }
    assert!(matches!(iam.create_key("carol+ci@example.com", None).await, Err(IamError::Invalid(_))));
    let keys: BTreeSet<String> =
        iam.user("carol+ci@example.com").unwrap().keys.into_iter().map(|k| k.access_key).collect();
    assert_eq!(keys.len(), MAX_KEYS_PER_USER, "every key is different");
    assert!(matches!(iam.add_group("a/b").await, Err(IamError::Invalid(_))));
    assert!(matches!(iam.remove_group("none").await, Err(IamError::NoSuchGroup(_))));
    let nobody = buckets_api::iam::Attachment::default();
    assert!(matches!(iam.attach("readonly", &nobody, true).await, Err(IamError::Invalid(_))));
    let to_user = buckets_api::iam::Attachment { user: Some("carol+ci@example.com".into()), group: None };
    assert!(matches!(iam.attach("missing", &to_user, true).await, Err(IamError::NoSuchPolicy(_))));
    assert_eq!(iam.policies().len(), builtin::BUILTIN.len());
}
