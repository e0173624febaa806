%% EUnit tests of the off-site settings (emqx_guard_offsite_config) and their redaction.
-module(emqx_guard_offsite_config_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_guard_offsite_config).
-define(R, "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p").

defaults_are_off_test() ->
    D = ?C:defaults(),
    ?assertEqual(lists:sort(?C:keys()), lists:sort(maps:keys(D))),
    ?assertNot(?C:enabled(D)),
    ?assertEqual(off, ?C:to_nif(D)),
    ?assertEqual(ok, ?C:check(D)).

validate_test() ->
    ?assertEqual({ok, <<"s3">>}, ?C:validate(backup_remote_type, "S3")),
    ?assertMatch({error, _}, ?C:validate(backup_remote_type, "gcs")),
    ?assertEqual({ok, <<"a/b">>}, ?C:validate(backup_remote_prefix, <<"/a/b/">>)),
    ?assertMatch({error, _}, ?C:validate(backup_remote_bucket, <<"a b">>)),
    ?assertEqual({ok, <<"http://127.0.0.1:9000">>}, ?C:validate(backup_remote_endpoint, <<"http://127.0.0.1:9000">>)),
    ?assertMatch({error, _}, ?C:validate(backup_remote_endpoint, <<"ftp://x">>)),
    ?assertMatch({error, _}, ?C:validate(backup_remote_endpoint, <<"https://x/path">>)),
    ?assertEqual({ok, <<?R>>}, ?C:validate(backup_remote_recipient, <<?R>>)),
    ?assertEqual({ok, <<>>}, ?C:validate(backup_remote_recipient, <<>>)),
    ?assertMatch({error, _}, ?C:validate(backup_remote_recipient, <<"age1nope">>)),
    ?assertEqual({ok, true}, ?C:validate(backup_remote_path_style, <<"on">>)),
    {error, Why} = said(?C:validate(backup_remote_secret_key, <<"s3kr1t\nX">>)),
    ?assertEqual(nomatch, binary:match(Why, <<"s3kr1t">>)),
    ?assertMatch({error, _}, ?C:validate(backup_remote_colour, <<"x">>)).

%% Parts in flight: a whole number from 1 to 64, given as text or stored; anything else is one
%% line that says the range.
concurrency_test() ->
    ?assertEqual(4, maps:get(backup_remote_concurrency, ?C:defaults())),
    ?assertEqual({ok, 8}, ?C:validate(backup_remote_concurrency, <<"8">>)),
    ?assertEqual({ok, 1}, ?C:validate(backup_remote_concurrency, " 1 ")),
    ?assertEqual({ok, 64}, ?C:validate(backup_remote_concurrency, 64)),
    Refused = <<"backup_remote_concurrency must be a whole number from 1 to 64 (parts in flight at once)">>,
    [?assertEqual({error, Refused}, said(?C:validate(backup_remote_concurrency, Bad)), Bad)
     || Bad <- [<<"0">>, <<"65">>, <<"four">>, <<"4.5">>, <<>>, 0, -1, 65, 4.0]].

check_and_nif_config_test() ->
    S = maps:merge(?C:defaults(), #{backup_remote_type => <<"s3">>, backup_remote_bucket => <<"b">>}),
    {error, Line} = said(?C:check(S)),
    ?assertEqual(<<"backup_remote s3 needs access_key=..., secret_key=...">>, Line),
    Full = S#{backup_remote_access_key => <<"a">>, backup_remote_secret_key => <<"s">>, backup_remote_recipient => <<?R>>},
    ?assertEqual(ok, ?C:check(Full)),
    {ok, Config} = ?C:to_nif(Full),
    ?assertMatch(#{bucket := <<"b">>, access_key := <<"a">>, secret_key := <<"s">>, prefix := <<>>,
                   region := <<"us-east-1">>, endpoint := undefined, path_style := false, tls_verify := true,
                   ca_file := undefined, recipient := <<?R>>, concurrency := 4}, Config),
    {ok, Eight} = ?C:to_nif(Full#{backup_remote_concurrency => 8}),
    ?assertMatch(#{concurrency := 8}, Eight).

%% What a person reads of a refusal: the reason's line (emqx_guard_outcome:format_error/1).
said({error, Why}) -> {error, emqx_guard_outcome:format_error(Why)};
said(Other) -> Other.
