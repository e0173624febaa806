%% @doc EUnit: what a failed request says (emqx_guard_http) never holds the URL's path or query.
-module(emqx_guard_http_tests).

-include_lib("eunit/include/eunit.hrl").

failure_lines_show_no_secret_test_() ->
    {setup, fun() -> application:ensure_all_started(inets) end, fun(_) -> ok end, [
        fun() ->
            {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
            {ok, Port} = inet:port(L),
            ok = gen_tcp:close(L),
            Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/hook/PathSecret?key=QuerySecret"]),
            {error, {retry, Line}} = emqx_guard_http:post(Url, {<<"application/json">>, <<"{}">>}, [], #{timeout_ms => 2000}),
            ?assertMatch(<<"HTTP request to http://127.0.0.1:", _/binary>>, Line),
            ?assertEqual(nomatch, binary:match(Line, [<<"PathSecret">>, <<"QuerySecret">>]))
        end,
        fun() ->
            Url = <<"http://[bad/hook/PathSecret?key=QuerySecret">>,
            {error, {_, Line}} = emqx_guard_http:post(Url, {<<"application/json">>, <<"{}">>}, [], #{timeout_ms => 2000}),
            ?assertEqual(nomatch, binary:match(Line, [<<"PathSecret">>, <<"QuerySecret">>]))
        end
    ]}.

classify_test_() ->
    A = fun(Code, Headers) -> #{status => Code, phrase => <<>>, headers => Headers, body => <<>>} end,
    [
        ?_assertEqual(ok, emqx_guard_http:classify(A(202, []), <<"t">>)),
        ?_assertEqual({retry, <<"t">>, 30000}, emqx_guard_http:classify(A(429, [{"retry-after", "30"}]), <<"t">>)),
        ?_assertEqual({retry, <<"t">>}, emqx_guard_http:classify(A(429, [{"retry-after", "Wed, 21 Oct 2026 07:28:00 GMT"}]), <<"t">>)),
        ?_assertEqual({retry, <<"t">>}, emqx_guard_http:classify(A(502, []), <<"t">>)),
        ?_assertEqual({error, <<"t">>}, emqx_guard_http:classify(A(404, []), <<"t">>)),
        %% a service asking for more than an hour waits an hour
        ?_assertEqual({retry, <<"t">>, 3600000}, emqx_guard_http:classify(A(503, [{"Retry-After", "86400"}]), <<"t">>))
    ].
