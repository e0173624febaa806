%% @doc EUnit: the webhook's JSON encoder (emqx_guard_json).
-module(emqx_guard_json_tests).

-include_lib("eunit/include/eunit.hrl").

scalars_test_() ->
    [
        ?_assertEqual(<<"true">>, emqx_guard_json:encode(true)),
        ?_assertEqual(<<"false">>, emqx_guard_json:encode(false)),
        ?_assertEqual(<<"null">>, emqx_guard_json:encode(null)),
        ?_assertEqual(<<"null">>, emqx_guard_json:encode(undefined)),
        ?_assertEqual(<<"\"backup_ok\"">>, emqx_guard_json:encode(backup_ok)),
        ?_assertEqual(<<"-42">>, emqx_guard_json:encode(-42)),
        ?_assertEqual(<<"2.5">>, emqx_guard_json:encode(2.5)),
        ?_assertEqual(<<"[]">>, emqx_guard_json:encode([])),
        ?_assertEqual(<<"{}">>, emqx_guard_json:encode(#{}))
    ].

escaping_test_() ->
    [
        ?_assertEqual(<<"\"a\\\"b\\\\c\"">>, emqx_guard_json:encode(<<"a\"b\\c">>)),
        ?_assertEqual(<<"\"\\n\\r\\t\\b\\f\"">>, emqx_guard_json:encode(<<"\n\r\t\b\f">>)),
        ?_assertEqual(<<"\"\\u0001\\u001f\"">>, emqx_guard_json:encode(<<1, 31>>)),
        %% non-ASCII stays UTF-8; the two JavaScript line terminators are escaped
        ?_assertEqual(<<"\"Zürich \\u2028\\u2029\""/utf8>>,
            emqx_guard_json:encode(<<"Zürich "/utf8, 16#2028/utf8, 16#2029/utf8>>)),
        ?_assertEqual(<<"\"/\"">>, emqx_guard_json:encode(<<"/">>))
    ].

structures_test() ->
    ?assertEqual(
        <<"{\"a\":[1,\"x\",null],\"b\":{\"c\":true},\"d\":\"e\"}">>,
        emqx_guard_json:encode(#{<<"d">> => <<"e">>, b => #{"c" => true}, a => [1, <<"x">>, undefined]})
    ).

unencodable_test_() ->
    [
        ?_assertError({json_unencodable, _}, emqx_guard_json:encode(self())),
        ?_assertError({json_unencodable, _}, emqx_guard_json:encode({a, b})),
        ?_assertError({json_unencodable, _}, emqx_guard_json:encode(<<255, 0>>))
    ].

decode_test_() ->
    D = fun emqx_guard_json:decode/1,
    [
        ?_assertEqual({ok, #{<<"errcode">> => 0, <<"errmsg">> => <<"ok">>}}, D(<<"{\"errcode\":0,\"errmsg\":\"ok\"}">>)),
        ?_assertEqual({ok, #{<<"ok">> => false, <<"error">> => <<"channel_not_found">>}},
            D(<<" {\"ok\": false, \"error\": \"channel_not_found\"} ">>)),
        ?_assertEqual({ok, [1, -2.5, null, true, <<"a\"\n\x{e9}"/utf8>>, #{}]}, D(<<"[1,-2.5,null,true,\"a\\\"\\n\\u00e9\",{}]">>)),
        ?_assertEqual({ok, <<"😀"/utf8>>}, D(<<"\"\\ud83d\\ude00\"">>)),
        ?_assertEqual(error, D(<<"ok">>)),
        ?_assertEqual(error, D(<<"{\"a\":1">>)),
        ?_assertEqual(error, D(<<"{} x">>)),
        %% what encode writes, decode reads back
        ?_assertEqual({ok, #{<<"a">> => [1, <<"x">>, null], <<"b">> => #{<<"c">> => true}}},
            D(emqx_guard_json:encode(#{a => [1, <<"x">>, undefined], b => #{c => true}})))
    ].

%% `pretty/1' is the same JSON value laid out one member a line, two spaces a level.
pretty_test() ->
    Doc = #{<<"b">> => [1, #{<<"c">> => null}, []], <<"a">> => #{}, <<"s">> => <<"x\ny">>},
    Pretty = emqx_guard_json:pretty(Doc),
    ?assertEqual(emqx_guard_json:decode(emqx_guard_json:encode(Doc)), emqx_guard_json:decode(Pretty)),
    ?assertEqual(<<"{\n  \"a\": {},\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    },\n    []\n  ],\n  \"s\": \"x\\ny\"\n}">>,
                 Pretty),
    ?assertEqual(<<"[]">>, emqx_guard_json:pretty([])),
    ?assertEqual(<<"7">>, emqx_guard_json:pretty(7)).
