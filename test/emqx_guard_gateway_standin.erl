%% @doc A stand-in of EMQX 6.3's plugin API gateway and of the dashboard page that shows a
%% plugin's UI, served over HTTP on 127.0.0.1 (gen_tcp, HTTP/1.1, one request per connection).
%% It behaves as EMQX's source does (`emqx_plugins_api_endpoint', `emqx_plugins:handle_api_call/3',
%% `emqx_dashboard:authorize/2', read for 6.1.1 - 6.3):
%% <ul>
%% <li>`/api/v5/plugin_api/<plugin>/<rest>': the path split on `/' (empty segments dropped) and
%%     each segment percent-decoded; the query string a map of binaries; the request headers a
%%     map with lower-case names, less `authorization' and `cookie'; the body of a POST, PUT or
%%     PATCH decoded from JSON (`#{}' when empty; not JSON: 400 as minirest answers), `#{}' for
%%     GET and DELETE;</li>
%% <li>authentication first: `Authorization: Bearer <token>', else (plugin API paths only, 6.1.2)
%%     the `emqx_auth' cookie; an unknown or missing token is 401. Each token stands for an
%%     `auth_meta' given to `add_token/3' (`auth_type', `source', `namespace', `actor' with
%%     `role' and `namespace'); Context is `#{auth_meta, namespace}';</li>
%% <li>the callback (`emqx_guard_app:on_handle_api_call/4') runs in a process of its own, killed
%%     after the timeout (5 s): 503 `PLUGIN_API_TIMEOUT'; a crash is 500; its result mapped as
%%     `map_plugin_api_result/1' does (`{error, not_found}' 404, `{error, Code, Msg}' 400, any
%%     other shape 500); a map or list body written as JSON;</li>
%% <li>the response headers (6.3.0): only the allow-listed ones and those named `x-plugin-*' go
%%     out; the others are dropped and remembered (`dropped_headers/1');</li>
%% <li>`/login?token=T' sets the `emqx_auth' cookie and sends the browser to `/dashboard', a page
%%     that shows the plugin's `index' in an iframe, as the dashboard's plugin page does.</li>
%% </ul>
-module(emqx_guard_gateway_standin).

-export([start/0, start/1, stop/1, port/1, add_token/3, dropped_headers/1, requests/1]).

-define(ALLOWED_HEADERS, [<<"content-type">>, <<"cache-control">>, <<"content-disposition">>, <<"etag">>,
                          <<"last-modified">>, <<"location">>, <<"content-language">>]).

-type gateway() :: #{pid := pid(), port := inet:port_number(), table := ets:tid()}.

%% @doc `start(#{})'.
-spec start() -> {ok, gateway()}.
start() ->
    start(#{}).

%% @doc Listens on 127.0.0.1 (`port', default any free one); `timeout' (5000 ms), `plugin'
%% (`<<"emqx_guard">>'), `callback' (`{emqx_guard_app, on_handle_api_call}'), `index' (`/ui').
-spec start(map()) -> {ok, gateway()}.
start(Opts) ->
    Parent = self(),
    Pid = spawn(fun() ->
        Table = ets:new(?MODULE, [public, bag]),
        {ok, Listen} = gen_tcp:listen(maps:get(port, Opts, 0), [binary, {ip, {127, 0, 0, 1}}, {packet, http_bin},
                                                                  {active, false}, {reuseaddr, true}, {backlog, 64}]),
        {ok, Port} = inet:port(Listen),
        Parent ! {self(), #{port => Port, table => Table}},
        Conf = maps:merge(#{timeout => 5000, plugin => <<"emqx_guard">>, callback => {emqx_guard_app, on_handle_api_call},
                            index => <<"/ui">>, table => Table}, Opts),
        accept(Listen, Conf)
    end),
    receive
        {Pid, Info} -> {ok, Info#{pid => Pid}}
    after 5000 -> error(gateway_not_started)
    end.

-spec stop(gateway()) -> ok.
stop(#{pid := Pid}) ->
    exit(Pid, kill),
    ok.

-spec port(gateway()) -> inet:port_number().
port(#{port := Port}) ->
    Port.

%% @doc Token stands for a login with AuthMeta's role and namespace.
-spec add_token(gateway(), binary(), map()) -> ok.
add_token(#{table := T}, Token, AuthMeta) ->
    true = ets:insert(T, {{token, Token}, AuthMeta}),
    ok.

%% @doc The response headers the plugin sent that the allow-list dropped.
-spec dropped_headers(gateway()) -> [binary()].
dropped_headers(#{table := T}) ->
    [H || {dropped, H} <- ets:lookup(T, dropped)].

%% @doc The requests the plugin saw: `{Method, Path, Request, Context}', oldest first.
-spec requests(gateway()) -> [tuple()].
requests(#{table := T}) ->
    [R || {seen, R} <- ets:lookup(T, seen)].

%%--------------------------------------------------------------------

accept(Listen, Conf) ->
    case gen_tcp:accept(Listen) of
        {ok, Socket} ->
            Pid = spawn(fun() -> receive go -> serve(Socket, Conf) end end),
            ok = gen_tcp:controlling_process(Socket, Pid),
            Pid ! go,
            accept(Listen, Conf);
        {error, _} ->
            ok
    end.

serve(Socket, Conf) ->
    try read_request(Socket) of
        {ok, Req} -> reply(Socket, dispatch(Req, Conf));
        {error, _} -> ok
    catch
        _:_ -> ok
    end,
    gen_tcp:close(Socket).

read_request(Socket) ->
    case gen_tcp:recv(Socket, 0, 30000) of
        {ok, {http_request, Method, {abs_path, Target}, _Vsn}} ->
            read_headers(Socket, #{method => Method, target => Target, headers => #{}});
        Other ->
            {error, Other}
    end.

read_headers(Socket, Req = #{headers := Hs}) ->
    case gen_tcp:recv(Socket, 0, 30000) of
        {ok, {http_header, _, Name, _, Value}} ->
            Key = string:lowercase(if is_atom(Name) -> atom_to_binary(Name); true -> Name end),
            read_headers(Socket, Req#{headers => Hs#{Key => Value}});
        {ok, http_eoh} ->
            ok = inet:setopts(Socket, [{packet, raw}]),
            Body =
                case binary_to_integer(maps:get(<<"content-length">>, Hs, <<"0">>)) of
                    0 -> <<>>;
                    N -> {ok, B} = gen_tcp:recv(Socket, N, 30000), B
                end,
            {ok, Req#{body => Body}};
        Other ->
            {error, Other}
    end.

dispatch(#{target := Target} = Req, Conf) ->
    #{path := Path} = Uri = uri_string:parse(Target),
    Query = maps:get(query, Uri, <<>>),
    Segments = binary:split(Path, <<"/">>, [global, trim_all]),
    case Segments of
        [<<"api">>, <<"v5">>, <<"plugin_api">>, Plugin | Rest] ->
            plugin_api(Req, uri_string:percent_decode(Plugin), [uri_string:percent_decode(S) || S <- Rest], Query, Conf);
        [<<"login">>] ->
            Token = proplists:get_value(<<"token">>, uri_string:dissect_query(Query), <<>>),
            {302, #{<<"location">> => <<"/dashboard">>, <<"set-cookie">> => <<"emqx_auth=", Token/binary, "; Path=/">>}, <<>>};
        [<<"dashboard">>] ->
            {200, #{<<"content-type">> => <<"text/html; charset=utf-8">>}, dashboard_page(Conf)};
        _ ->
            {404, #{}, <<>>}
    end.

plugin_api(Req = #{method := Method0, headers := Hs, body := Body0}, Plugin, Rest, Query, Conf = #{table := T}) ->
    case authorize(Hs, T) of
        {ok, AuthMeta} ->
            Method = binary_to_atom(string:lowercase(atom_or_bin(Method0))),
            case body(Method, Hs, Body0) of
                {ok, Body} ->
                    Request = #{method => Method, query_string => maps:from_list(uri_string:dissect_query(Query)),
                                headers => maps:without([<<"authorization">>, <<"cookie">>], Hs), body => Body},
                    Context = #{auth_meta => AuthMeta, namespace => maps:get(namespace, AuthMeta, global)},
                    case Plugin =:= maps:get(plugin, Conf) of
                        true ->
                            true = ets:insert(T, {seen, {Method, Rest, Request, Context}}),
                            respond(call(Method, Rest, Request, Context, Conf), T);
                        false ->
                            json(404, #{}, #{code => <<"NOT_FOUND">>, message => <<"Plugin API Not Found">>})
                    end;
                error ->
                    json(400, #{}, #{code => <<"BAD_REQUEST">>, message => <<"invalid json">>})
            end;
        error ->
            _ = Req,
            json(401, #{<<"www-authenticate">> => <<"Basic Realm=\"emqx-dashboard\"">>},
                 #{code => <<"AUTHORIZATION_HEADER_ERROR">>, message => <<"Missing authorization header">>})
    end.

atom_or_bin(A) when is_atom(A) -> atom_to_binary(A);
atom_or_bin(B) -> B.

authorize(#{<<"authorization">> := <<"Bearer ", Token/binary>>}, T) ->
    token(Token, T);
authorize(#{<<"cookie">> := Cookies}, T) ->
    Pairs = [list_to_tuple(binary:split(string:trim(C), <<"=">>)) || C <- binary:split(Cookies, <<";">>, [global])],
    case lists:keyfind(<<"emqx_auth">>, 1, Pairs) of
        {_, Token} -> token(Token, T);
        false -> error
    end;
authorize(_, _T) ->
    error.

token(Token, T) ->
    case ets:lookup(T, {token, Token}) of
        [{_, Meta}] -> {ok, Meta};
        [] -> error
    end.

body(Method, _Hs, _Body) when Method =:= get; Method =:= delete -> {ok, #{}};
body(_Method, _Hs, <<>>) -> {ok, #{}};
body(_Method, _Hs, Body) ->
    case emqx_guard_json:decode(Body) of
        {ok, Term} -> {ok, Term};
        error -> error
    end.

%% The callback in a process of its own, cut off at the timeout (`emqx_utils:nolink_apply/2').
call(Method, Rest, Request, Context, #{timeout := Timeout, callback := {M, F}}) ->
    {Pid, MRef} = spawn_monitor(fun() -> exit({result, M:F(Method, Rest, Request, Context)}) end),
    receive
        {'DOWN', MRef, process, Pid, {result, Result}} -> map_result(Result);
        {'DOWN', MRef, process, Pid, _Crash} ->
            {500, #{}, #{code => <<"INTERNAL_ERROR">>, message => <<"Plugin API Callback Crash">>}}
    after Timeout ->
        exit(Pid, kill),
        receive {'DOWN', MRef, process, Pid, _} -> ok end,
        {503, #{}, #{code => <<"PLUGIN_API_TIMEOUT">>, message => <<"Plugin API Timeout">>}}
    end.

map_result({ok, Status, Headers, Body}) when is_integer(Status) -> {Status, headers(Headers), Body};
map_result({error, Code, Msg}) -> {400, #{}, #{code => bin(Code), message => bin(Msg)}};
map_result({error, Status, Headers, Body}) when is_integer(Status) -> {Status, headers(Headers), Body};
map_result({error, not_found}) -> {404, #{}, #{code => <<"NOT_FOUND">>, message => <<"Plugin API Not Found">>}};
map_result(_) -> {500, #{}, #{code => <<"INTERNAL_ERROR">>, message => <<"Invalid Plugin API Response">>}}.

headers(H) when is_map(H) -> maps:from_list([{string:lowercase(bin(K)), iolist_to_binary(V)} || {K, V} <- maps:to_list(H)]);
headers(H) when is_list(H) -> maps:from_list([{string:lowercase(bin(K)), iolist_to_binary(V)} || {K, V} <- H]);
headers(_) -> #{}.

bin(A) when is_atom(A) -> atom_to_binary(A);
bin(L) when is_list(L) -> unicode:characters_to_binary(L);
bin(B) when is_binary(B) -> B.

%% 6.3.0: only allow-listed response headers and `x-plugin-*' pass.
respond({Status, Headers, Body}, T) ->
    Kept = maps:filter(fun(K, _) ->
        Allowed = lists:member(K, ?ALLOWED_HEADERS) orelse binary:match(K, <<"x-plugin-">>) =:= {0, 9},
        Allowed orelse ets:insert(T, {dropped, K}),
        Allowed
    end, Headers),
    case is_binary(Body) of
        true -> {Status, Kept, Body};
        false -> json(Status, Kept, Body)
    end.

json(Status, Headers, Body) ->
    {Status, maps:merge(#{<<"content-type">> => <<"application/json">>}, Headers), emqx_guard_json:encode(Body)}.

reply(Socket, {Status, Headers, Body}) ->
    Lines = [[K, <<": ">>, V, <<"\r\n">>] || {K, V} <- maps:to_list(Headers#{<<"content-length">> => integer_to_binary(byte_size(Body)),
                                                                         <<"connection">> => <<"close">>})],
    gen_tcp:send(Socket, [<<"HTTP/1.1 ">>, integer_to_binary(Status), <<" ">>, reason(Status), <<"\r\n">>, Lines, <<"\r\n">>, Body]).

reason(200) -> <<"OK">>;
reason(202) -> <<"Accepted">>;
reason(302) -> <<"Found">>;
reason(400) -> <<"Bad Request">>;
reason(401) -> <<"Unauthorized">>;
reason(403) -> <<"Forbidden">>;
reason(404) -> <<"Not Found">>;
reason(409) -> <<"Conflict">>;
reason(_) -> <<"Status">>.

%% The dashboard's plugin page: its own chrome around the plugin's `index' in an iframe.
dashboard_page(#{plugin := Plugin, index := Index}) ->
    Src = <<"/api/v5/plugin_api/", Plugin/binary, Index/binary>>,
    <<"<!doctype html><html><head><meta charset=\"utf-8\"><title>EMQX Dashboard - Plugins</title>"
      "<style>body{margin:0;font-family:sans-serif}header{background:#1e2a3a;color:#fff;padding:10px 16px}"
      "iframe{border:0;width:100%;height:calc(100vh - 44px)}</style></head><body>"
      "<header>EMQX Dashboard &rsaquo; Plugins &rsaquo; ", Plugin/binary, "</header>"
      "<iframe id=\"plugin-ui\" src=\"", Src/binary, "\"></iframe></body></html>">>.
