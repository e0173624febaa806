%% @doc EUnit: remote retention's guard (`emqx_guard_offsite:retention/4', issue 19 defect 8) and
%% how an off-site job's result and destination are said.
-module(emqx_guard_offsite_tests).

-include_lib("eunit/include/eunit.hrl").

-define(O, emqx_guard_offsite).

%% A rebuilt node: twelve backups of an earlier life, one of its own: paused, and said why.
rebuilt_node_test() ->
    Old = [name(D) || D <- lists:seq(1, 12)],
    Mine = name(20),
    R = ?O:retention([Mine | Old], [Mine], 5, false),
    ?assertEqual(#{paused => #{foreign => 12, own => 1, keep => 5}}, R),
    Line = ?O:retention_line(R),
    ?assertMatch(<<"paused: there are 12 backup(s) in the bucket that this node did not upload", _/binary>>, Line),
    ?assertNotEqual(nomatch, binary:match(Line, <<"until this node has uploaded 5 of its own (1 so far)">>)),
    ?assertNotEqual(nomatch, binary:match(Line, <<"guard backup_remote_prune --confirm">>)),
    %% confirmed, or a history of its own as long as keep: retention applies
    ?assertEqual(ok, ?O:retention([Mine | Old], [Mine], 5, true)),
    Five = [name(D) || D <- lists:seq(20, 24)],
    ?assertEqual(ok, ?O:retention(Five ++ Old, Five, 5, false)),
    %% an own upload no longer in the bucket does not count
    ?assertMatch(#{paused := #{own := 4}}, ?O:retention(tl(Five) ++ Old, Five, 5, false)),
    %% nothing but its own: nothing to protect
    ?assertEqual(ok, ?O:retention([Mine], [Mine], 5, false)),
    ?assertEqual(ok, ?O:retention([], [], 5, false)).

%% Randomized: whatever the bucket holds, retention is allowed exactly when what keeping the
%% newest Keep would delete is this node's own, or the node has Keep of its own there, or the
%% operator confirmed; and it is paused only when a backup of someone else is there.
retention_property_test() ->
    rand:seed(exsss, {19, 8, 2026}),
    lists:foreach(fun(_) -> one_case() end, lists:seq(1, 2000)).

one_case() ->
    Universe = [name(D) || D <- lists:seq(1, 15)],
    There = [N || N <- Universe, rand:uniform(2) =:= 1],
    Own = [N || N <- Universe, rand:uniform(3) =:= 1],
    Keep = rand:uniform(6),
    Confirmed = rand:uniform(4) =:= 1,
    OwnThere = [N || N <- There, lists:member(N, Own)],
    Foreign = There -- Own,
    %% what retention keeping the newest Keep (names sort by time) would delete
    Doomed = lists:sublist(lists:sort(There), max(0, length(There) - Keep)),
    Case = {There, Own, Keep, Confirmed},
    case ?O:retention(There, Own, Keep, Confirmed) of
        ok ->
            ?assert((Doomed -- Own =:= []) orelse Foreign =:= [] orelse length(OwnThere) >= Keep orelse Confirmed, Case);
        #{paused := #{foreign := F, own := O, keep := K}} ->
            ?assertEqual({length(Foreign), length(OwnThere), Keep}, {F, O, K}, Case),
            ?assert(Foreign =/= [] andalso length(OwnThere) < Keep andalso not Confirmed, Case)
    end.

where_and_destination_test() ->
    C = #{bucket => <<"acme">>, prefix => <<"emqx/prod">>, endpoint => <<"https://minio:9000">>},
    ?assertEqual(<<"s3://acme/emqx/prod">>, ?O:where(C)),
    ?assertEqual(<<"s3://acme">>, ?O:where(C#{prefix => <<>>})),
    ?assertEqual(<<"https://minio:9000/acme/emqx/prod">>, ?O:destination(C)),
    ?assertEqual(<<"aws/acme/emqx/prod">>, ?O:destination(C#{endpoint => undefined})),
    %% a confirmation for one destination is not one for another
    ?assertNotEqual(?O:destination(C), ?O:destination(C#{bucket => <<"other">>})).

summary_test() ->
    ?assertEqual(<<"nothing to upload">>, ?O:summary(#{result => ok, uploaded => [], pruned => []})),
    ?assertEqual(<<"uploaded a, b; 2 older remote backup(s) pruned">>,
                 ?O:summary(#{result => ok, uploaded => [<<"a">>, <<"b">>], pruned => [<<"c">>, <<"d">>]})),
    ?assertEqual(<<"uploaded a; remote retention paused">>,
                 ?O:summary(#{result => ok, uploaded => [<<"a">>], pruned => [],
                              retention => #{paused => #{foreign => 1, own => 0, keep => 1}}})),
    ?assertEqual(<<"FAILED: upload of a failed: denied">>,
                 ?O:summary(#{result => failed, uploaded => [], pruned => [], error => <<"upload of a failed: denied">>})).

name(Day) ->
    list_to_binary(io_lib:format("emqx-export-2026-01-~2..0b-12-00-00.000.tar.gz", [Day])).
