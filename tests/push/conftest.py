from tests.fakes.fixtures import apns_key, fake_apns, fake_fcm, fake_webpush, fcm_credentials_file, tls_certs  # noqa: F401
