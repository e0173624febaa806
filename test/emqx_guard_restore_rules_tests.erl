%% @doc EMQX's import rules as the restore's preflight applies them (`emqx_guard_restore_rules'),
%% each case one of EMQX's own refusals or acceptances (emqx_mgmt_data_backup, its changelogs).
-module(emqx_guard_restore_rules_tests).

-include_lib("eunit/include/eunit.hrl").

backup(V, E) -> #{version => V, edition => E}.
node(V, E) -> #{version => V, edition => E}.

edition_test_() ->
    [
        ?_assertMatch({error, {edition_refused, _}}, emqx_guard_restore_rules:check(backup(<<"5.8.1">>, <<"ee">>), node(<<"5.8.6">>, ce))),
        ?_assertEqual(ok, emqx_guard_restore_rules:check(backup(<<"5.8.1">>, <<"ce">>), node(<<"5.8.6">>, ee))),
        ?_assertEqual(ok, emqx_guard_restore_rules:check(backup(<<"5.8.1">>, <<"ee">>), node(<<"5.8.6">>, ee)))
    ].

version_test_() ->
    Check = fun(B, N) -> emqx_guard_restore_rules:check(backup(B, <<"ce">>), node(N, ce)) end,
    [
        %% the patch does not count; the same or an older minor imports
        ?_assertEqual(ok, Check(<<"5.3.9">>, <<"5.3.2">>)),
        ?_assertEqual(ok, Check(<<"5.1.0">>, <<"5.3.2">>)),
        %% a newer minor or major is refused
        ?_assertMatch({error, {newer_version, #{backup := <<"5.4.0">>, node := <<"5.3.2">>}}}, Check(<<"5.4.0">>, <<"5.3.2">>)),
        ?_assertMatch({error, {newer_version, _}}, Check(<<"6.0.0">>, <<"5.8.6">>)),
        %% an older major: EMQX decides (mid-2025 builds accept it), the notes say so
        ?_assertEqual(ok, Check(<<"5.8.6">>, <<"6.0.1">>)),
        ?_assertMatch([<<"a 5.8.6 backup into EMQX 6.0.1: ", _/binary>> | _],
                      emqx_guard_restore_rules:notes(backup(<<"5.8.6">>, <<"ce">>), node(<<"6.0.1">>, ce))),
        ?_assertMatch({error, {bad_version, <<"x">>}}, Check(<<"x">>, <<"5.3.2">>)),
        ?_assertEqual(ok, emqx_guard_restore_rules:check(backup(<<"9.9.9">>, <<"ce">>), unknown))
    ].

same_minor_test_() ->
    Req = fun emqx_guard_restore_rules:same_minor_required/1,
    Cluster = fun(V, Others) -> emqx_guard_restore_rules:check_cluster(node(V, ce), Others) end,
    [
        ?_assertNot(Req(<<"6.0.3">>)), ?_assert(Req(<<"6.0.4">>)),
        ?_assertNot(Req(<<"6.1.4">>)), ?_assert(Req(<<"6.1.5">>)),
        ?_assertNot(Req(<<"6.2.3">>)), ?_assert(Req(<<"6.2.4">>)),
        ?_assertNot(Req(<<"6.3.0">>)), ?_assert(Req(<<"6.3.1">>)), ?_assert(Req(<<"6.4.0">>)), ?_assert(Req(<<"7.0.0">>)),
        ?_assertNot(Req(<<"5.8.6">>)),
        ?_assertMatch({error, {mixed_versions, #{node := <<"6.3.1">>, others := [{'b@h', <<"6.2.4">>}]}}},
                      Cluster(<<"6.3.1">>, [{'a@h', <<"6.3.0">>}, {'b@h', <<"6.2.4">>}])),
        ?_assertEqual(ok, Cluster(<<"6.3.0">>, [{'b@h', <<"6.2.4">>}])),
        ?_assertEqual(ok, Cluster(<<"6.3.1">>, [{'a@h', <<"6.3.2">>}])),
        ?_assertEqual(ok, emqx_guard_restore_rules:check_cluster(unknown, [{'b@h', <<"6.2.4">>}]))
    ].

profile_note_test() ->
    Notes = emqx_guard_restore_rules:notes((backup(<<"6.3.0">>, <<"ce">>))#{security_profile => <<"hardened">>}, node(<<"6.3.1">>, ce)),
    ?assert(lists:any(fun(N) -> binary:match(N, <<"allow_security_profile_mismatch">>) =/= nomatch end, Notes)).

%% 6.3+ on a hardened node refuses a backup made under legacy or before 6.3 (no profile); a
%% legacy node, an unknown profile and releases before 6.3 take it; a hardened backup is fine.
profile_test_() ->
    Check = fun(Made, N, P) ->
        B = case Made of none -> backup(<<"6.2.1">>, <<"ce">>); _ -> (backup(<<"6.3.0">>, <<"ce">>))#{security_profile => Made} end,
        emqx_guard_restore_rules:check_profile(B, node(N, ce), P)
    end,
    [
        ?_assertEqual({error, {security_profile_mismatch, #{backup => <<"none">>, node => <<"6.3.0">>}}}, Check(none, <<"6.3.0">>, hardened)),
        ?_assertMatch({error, {security_profile_mismatch, #{backup := <<"legacy">>}}}, Check(<<"legacy">>, <<"7.0.0">>, hardened)),
        ?_assertEqual(ok, Check(<<"hardened">>, <<"6.3.0">>, hardened)),
        ?_assertEqual(ok, Check(none, <<"6.3.0">>, legacy)),
        ?_assertEqual(ok, Check(none, <<"6.3.0">>, unknown)),
        ?_assertEqual(ok, Check(none, <<"6.2.4">>, hardened)),
        ?_assertEqual(ok, emqx_guard_restore_rules:check_profile(backup(<<"6.2.1">>, <<"ce">>), unknown, hardened))
    ].
