%% @doc HTTP(S) POST for the notification channels (the generic webhook and the chat services):
%% the plugin's own httpc profile, TLS that checks the certificate against the URL's host, and
%% one classification of an answer.
%%
%% `post/4' sends one request, bounded by `timeout_ms' for the connection and for the whole
%% answer, never following a redirect, and returns the status, the headers and the body. What a
%% status means for a delivery is decided here once (`classify/2'): 2xx is an answer for the
%% channel to read, 408/429/5xx and network trouble are worth another try (429 and 503 with the
%% wait the service asks for in `Retry-After'), a refused certificate and every other status are
%% for the operator to fix. Error texts never hold the URL's path or query (where the secret
%% of a chat webhook is): requests are named by `emqx_guard_redact:url/1'.
-module(emqx_guard_http).

-include_lib("kernel/include/logger.hrl").

-export([start/0, stop/0, post/4, classify/2, status_text/2, retry_after_ms/1]).

-define(PROFILE, emqx_guard_notify).
%% The longest wait a service may ask for before the next attempt (an hour).
-define(MAX_RETRY_AFTER_MS, 3600000).

-type answer() :: #{status := pos_integer(), phrase := binary(), headers := [{string(), string()}], body := binary()}.
-type tls() :: #{verify := boolean(), ca_file := binary()}.
-export_type([answer/0, tls/0]).

%% @doc Starts the httpc profile `emqx_guard_notify' (inets and ssl are started as the app's
%% dependencies; starting them from here would deadlock inside the application controller).
-spec start() -> ok.
start() ->
    case inets:start(httpc, [{profile, ?PROFILE}]) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_http_not_started, reason => Why})
    end.

%% @doc Stops the profile.
-spec stop() -> ok.
stop() ->
    _ = inets:stop(httpc, ?PROFILE),
    ok.

%% @doc POSTs Body (with content type CType and extra Headers) to Url. Options: `timeout_ms',
%% `tls' (`#{verify, ca_file}'). `{error, Line}' for a request that got no answer.
-spec post(binary(), {binary() | string(), iodata()}, [{string(), string()}], map()) ->
    {ok, answer()} | {error, {retry | fatal, binary()}}.
post(Url, {CType, Body}, Headers, Opts) ->
    Timeout = maps:get(timeout_ms, Opts, 30000),
    HttpOpts = [{timeout, Timeout}, {connect_timeout, Timeout}, {autoredirect, false}] ++
        ssl_opts(Url, maps:get(tls, Opts, #{verify => true, ca_file => <<>>})),
    Request = {binary_to_list(Url), [{"user-agent", "emqx_guard"} | Headers], to_list(CType), iolist_to_binary(Body)},
    try httpc:request(post, Request, HttpOpts, [{body_format, binary}], profile()) of
        {ok, {{_, Code, Phrase}, RespHeaders, RespBody}} ->
            {ok, #{status => Code, phrase => unicode:characters_to_binary(Phrase), headers => RespHeaders, body => RespBody}};
        {error, Why} ->
            Line = scrub(unicode:characters_to_binary(io_lib:format("HTTP request to ~ts failed: ~0tp",
                [emqx_guard_redact:url(Url), Why])), Url),
            %% a refused certificate stays refused: an operator has to fix it, no retry
            case binary:match(Line, <<"tls_alert">>) of
                nomatch -> {error, {retry, Line}};
                _ -> {error, {fatal, Line}}
            end
    catch
        Class:Err ->
            {error, {fatal, scrub(unicode:characters_to_binary(io_lib:format("HTTP request failed: ~p:~0tP", [Class, Err, 8])), Url)}}
    end.

%% @doc What an HTTP answer means for a delivery, Text being the line to show for it:
%% `ok' for 2xx (the channel reads the body), else a retry (with the service's wait for 429
%% and 503) or an error.
-spec classify(answer(), binary()) -> ok | {retry, binary()} | {retry, binary(), pos_integer()} | {error, binary()}.
classify(#{status := Code}, _Text) when Code >= 200, Code < 300 ->
    ok;
classify(#{status := Code} = A, Text) when Code =:= 429; Code =:= 503 ->
    case retry_after_ms(A) of
        undefined -> {retry, Text};
        Ms -> {retry, Text, Ms}
    end;
classify(#{status := Code}, Text) when Code >= 500; Code =:= 408 ->
    {retry, Text};
classify(_, Text) ->
    {error, Text}.

%% @doc `HTTP 404 Not Found' followed by `: ' and Detail when Detail is not empty.
-spec status_text(answer(), binary()) -> binary().
status_text(#{status := Code, phrase := Phrase}, Detail) ->
    Head = string:trim(iolist_to_binary(["HTTP ", integer_to_binary(Code), " ", Phrase])),
    case Detail of
        <<>> -> Head;
        _ -> <<Head/binary, ": ", Detail/binary>>
    end.

%% @doc The wait a `Retry-After' header asks for (seconds only), at most an hour.
-spec retry_after_ms(answer()) -> pos_integer() | undefined.
retry_after_ms(#{headers := Headers}) ->
    case [V || {K, V} <- Headers, string:lowercase(K) =:= "retry-after"] of
        [V | _] ->
            case string:to_integer(string:trim(V)) of
                {S, []} when is_integer(S), S >= 0 -> min(?MAX_RETRY_AFTER_MS, max(1, S * 1000));
                _ -> undefined
            end;
        [] ->
            undefined
    end.

%%--------------------------------------------------------------------------------------------

%% An error term may quote the URL (httpc's malformed_url does): its path and query, where a
%% webhook's secret is, never reach a status line or a log.
scrub(Line, Url) ->
    Secret =
        case uri_string:parse(Url) of
            #{} = U -> [V || K <- [path, query], V <- [maps:get(K, U, <<>>)], byte_size(V) > 1];
            _ -> []
        end,
    lists:foldl(fun(S, Acc) -> binary:replace(Acc, S, <<"…"/utf8>>, [global]) end,
        binary:replace(Line, Url, emqx_guard_redact:url(Url), [global]), Secret).

ssl_opts(Url, Tls) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} ->
            case string:lowercase(Scheme) of
                <<"https">> -> [{ssl, tls_options(Host, Tls)}];
                _ -> []
            end;
        _ ->
            []
    end.

%% The certificate must name the URL's host (httpc passes it on: SNI for names); for a DNS
%% name the https match fun also accepts wildcard certificates, as browsers do. An IP address
%% is matched against the certificate's IP entries.
tls_options(Host, #{verify := false}) ->
    _ = Host,
    [{verify, verify_none}];
tls_options(Host, #{ca_file := CaFile}) ->
    [
        {verify, verify_peer},
        {cacerts, system_cacerts() ++ file_cacerts(CaFile)},
        {depth, 10}
    ] ++ hostname_check(Host).

hostname_check(Host) ->
    case inet:parse_address(binary_to_list(Host)) of
        {ok, Ip} ->
            %% httpc hands the address to ssl as a DNS name, which never matches an IP entry
            [{customize_hostname_check, [{match_fun, ip_match_fun(Ip)}]}];
        {error, _} ->
            [{customize_hostname_check, [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}]
    end.

ip_match_fun(Ip) ->
    Bytes =
        case Ip of
            {_, _, _, _} -> tuple_to_list(Ip);
            _ -> binary_to_list(<<<<W:16>> || W <- tuple_to_list(Ip)>>)
        end,
    fun
        (_Ref, {iPAddress, Presented}) when is_list(Presented) -> Presented =:= Bytes;
        (_Ref, {iPAddress, Presented}) when is_binary(Presented) -> Presented =:= list_to_binary(Bytes);
        (_Ref, _Presented) -> false
    end.

system_cacerts() ->
    try
        public_key:cacerts_get()
    catch
        _:_ -> []
    end.

file_cacerts(<<>>) ->
    [];
file_cacerts(Path) ->
    case file:read_file(Path) of
        {ok, Pem} -> [Der || {'Certificate', Der, not_encrypted} <- public_key:pem_decode(Pem)];
        {error, _} -> []
    end.

profile() ->
    case whereis(httpc:profile_name(?PROFILE)) of
        undefined -> default;
        _ -> ?PROFILE
    end.

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) -> L.
