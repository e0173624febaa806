%% @doc The one redaction of secrets: whatever is printed, logged, returned to the dashboard or
%% shown in a status or crash report goes through here first.
%%
%% Which settings are secrets is read from the schema (`emqx_guard_notify_config:specs/0',
%% `emqx_guard_offsite_config:specs/0'), never listed by hand: a value of type `password' or
%% `secret' (SMTP password, chat tokens and signing secrets, the S3 secret key) becomes `******'
%% (an empty one stays empty), a value of type `url' or `any_url' (webhook and chat URLs, whose
%% path or query is the receiver's secret) is cut to `scheme://host[:port]/…' (`url/1'). The
%% NIF's own configs (`emqx_guard_nif': `password' of the mail config, `secret_key' of the
%% off-site config) are secrets too.
%%
%% A key is recognized as an atom (the settings map), a binary or a charlist (the dashboard's
%% config, binary keys): `settings/1'. `term/1,2' finds such maps anywhere in a term (map values,
%% lists, improper lists, tuples: a process state, a message, an exception and its stack) and,
%% because a secret also travels without its key (a function's argument in a stack trace, a
%% line that quotes it), then hides every occurrence of the secrets those maps (and the
%% `Known' terms given) hold, as a whole value or inside a longer text. `status/1' does it for
%% a gen_server's `format_status/1'; `args/1' for `emqx ctl' arguments.
-module(emqx_guard_redact).

-export([settings/1, term/1, term/2, status/1, args/1, url/1]).

-define(HIDDEN, <<"******">>).
%% U+2026 HORIZONTAL ELLIPSIS: stands for the hidden part of a URL.
-define(ELLIPSIS, 16#2026).
%% Names of command-line `name=value' arguments whose value is a secret.
-define(SECRET_ARGS, [<<"password">>, <<"token">>, <<"secret">>, <<"secret_key">>]).
%% The secret keys of the NIF's configs (the mail config, the off-site config).
-define(NIF_SECRETS, [{password, hide}, {secret_key, hide}]).
%% A secret shorter than this is hidden where it is a whole value, not searched for inside
%% other text (a 1-character password would blank out every text holding that character).
-define(MIN_INNER, 4).

-type how() :: hide | url.

%% @doc Settings (atom, binary or charlist keys) with every secret hidden: passwords, tokens,
%% signing secrets and secret keys as `******' (left empty when unset), URLs cut as `url/1'.
%% Other values are redacted as `term/1' does. Safe to print and to log.
-spec settings(map()) -> map().
settings(Settings) when is_map(Settings) ->
    walk(Settings, secret_keys(), []).

%% @doc Term with every settings map in it redacted (`settings/1') and every secret those maps
%% hold hidden wherever else it appears in the term.
-spec term(term()) -> term().
term(Term) ->
    term(Term, []).

%% @doc `term/1', also hiding the secrets that the maps in Known hold (the settings a failing
%% call was given: their secrets may show up in its reason without their keys).
-spec term(term(), [term()]) -> term().
term(Term, Known) ->
    Keys = secret_keys(),
    Secrets = lists:usort(collect(Known, Keys, collect(Term, Keys, []))),
    walk(Term, Keys, [S || S <- Secrets, S =/= <<>>]).

%% @doc For a gen_server's `format_status/1': the state, the last message, the sys log and the
%% crash reason redacted together (a secret seen in one is hidden in all of them), so neither
%% `sys:get_status/1' nor a crash report shows a secret.
-spec status(gen_server:format_status()) -> gen_server:format_status().
status(Status) ->
    Parts = maps:with([state, message, log, reason], Status),
    maps:merge(Status, term(Parts)).

%% @doc Command-line arguments with secrets hidden: `password=...', `token=...', `secret=...'
%% and `secret_key=...' become `name=******', a URL (alone or as `name=URL') is cut as `url/1'
%% does. Other arguments stay as they are.
-spec args(term()) -> term().
args(Args) when is_list(Args) ->
    [arg(A) || A <- Args];
args(Other) ->
    Other.

%% @doc `scheme://host[:port]/…': the URL without user info, path, query or fragment (where
%% webhook receivers put their secret). Text that is not a URL becomes `…'.
-spec url(binary()) -> binary().
url(Url) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} = U when Host =/= <<>> ->
            HostText =
                case binary:match(Host, <<":">>) of
                    nomatch -> Host;
                    _ -> <<"[", Host/binary, "]">>
                end,
            Port =
                case U of
                    #{port := P} when is_integer(P) -> [":", integer_to_binary(P)];
                    _ -> []
                end,
            unicode:characters_to_binary([Scheme, "://", HostText, Port, "/", ?ELLIPSIS]);
        _ ->
            unicode:characters_to_binary([?ELLIPSIS])
    end.

%%--------------------------------------------------------------------------------------------

%% Every secret key, as atom and as binary text, with how its value is hidden.
-spec secret_keys() -> #{atom() | binary() => how()}.
secret_keys() ->
    Schema = emqx_guard_notify_config:specs() ++ emqx_guard_offsite_config:specs(),
    Hows = [{K, how(Type)} || {K, Type, _} <- Schema, how(Type) =/= keep] ++ ?NIF_SECRETS,
    maps:from_list(lists:append([[{K, How}, {atom_to_binary(K), How}] || {K, How} <- Hows])).

how(Type) when Type =:= password; Type =:= secret -> hide;
how(Type) when Type =:= url; Type =:= any_url -> url;
how(_) -> keep.

how_of(Key, Keys) when is_atom(Key); is_binary(Key) ->
    maps:get(Key, Keys, keep);
how_of(Key, Keys) when is_list(Key) ->
    case text(Key) of
        {ok, Bin} -> maps:get(Bin, Keys, keep);
        error -> keep
    end;
how_of(_, _) ->
    keep.

%% The secret texts held under secret keys anywhere in Term.
collect(M, Keys, Acc) when is_map(M) ->
    maps:fold(
        fun(K, V, A) ->
            case {how_of(K, Keys), text(V)} of
                {keep, _} -> collect(V, Keys, A);
                {How, {ok, T}} -> secret_texts(How, T) ++ A;
                {_, error} -> collect(V, Keys, A)
            end
        end,
        Acc,
        M
    );
collect(T, Keys, Acc) when is_tuple(T) ->
    collect(tuple_to_list(T), Keys, Acc);
collect([H | T], Keys, Acc) ->
    collect(T, Keys, collect(H, Keys, Acc));
collect(_, _Keys, Acc) ->
    Acc.

%% A secret value, and for a URL also its path and query (the part that is the secret), which
%% may be quoted without the rest.
secret_texts(url, Url) ->
    case uri_string:parse(Url) of
        #{path := Path} = U ->
            Tail = iolist_to_binary([Path | [["?", Q] || #{query := Q} <- [U]]]),
            [Url | [Tail || byte_size(Tail) >= ?MIN_INNER]];
        _ ->
            [Url]
    end;
secret_texts(hide, Text) ->
    [Text].

walk(M, Keys, Secrets) when is_map(M) ->
    maps:map(
        fun(K, V) ->
            case how_of(K, Keys) of
                keep -> walk(V, Keys, Secrets);
                How -> hidden(How, V)
            end
        end,
        M
    );
walk(T, Keys, Secrets) when is_tuple(T) ->
    list_to_tuple(walk(tuple_to_list(T), Keys, Secrets));
walk(B, _Keys, Secrets) when is_binary(B) ->
    scrub(B, Secrets);
walk(L, Keys, Secrets) when is_list(L) ->
    case Secrets =/= [] andalso io_lib:printable_unicode_list(L) of
        true ->
            %% a charlist: hidden like a binary (it stays a charlist when nothing was hidden)
            {ok, Bin} = text(L),
            case scrub(Bin, Secrets) of
                Bin -> L;
                Scrubbed -> Scrubbed
            end;
        false ->
            walk_list(L, Keys, Secrets)
    end;
walk(Other, _Keys, _Secrets) ->
    Other.

walk_list([H | T], Keys, Secrets) ->
    [walk(H, Keys, Secrets) | walk_list(T, Keys, Secrets)];
walk_list([], _Keys, _Secrets) ->
    [];
walk_list(Tail, Keys, Secrets) ->
    walk(Tail, Keys, Secrets).

%% The value of a secret key: empty stays empty (it shows the secret is not set).
hidden(_How, V) when V =:= <<>>; V =:= [] ->
    V;
hidden(url, V) ->
    case text(V) of
        {ok, Url} -> url(Url);
        error -> ?HIDDEN
    end;
hidden(hide, _V) ->
    ?HIDDEN.

%% Bin with each secret hidden: a whole value becomes `******', a secret inside longer text is
%% replaced by `******' there.
scrub(Bin, Secrets) ->
    case lists:member(Bin, Secrets) of
        true ->
            ?HIDDEN;
        false ->
            lists:foldl(
                fun
                    (S, B) when byte_size(S) >= ?MIN_INNER, byte_size(S) =< byte_size(B) ->
                        binary:replace(B, S, ?HIDDEN, [global]);
                    (_S, B) ->
                        B
                end,
                Bin,
                Secrets
            )
    end.

%% Text held as a binary (taken as it is: a secret in it is hidden even when it is not UTF-8)
%% or a charlist; an atom is no secret's text.
text(B) when is_binary(B) ->
    {ok, B};
text(L) when is_list(L) ->
    emqx_guard_value:text(L);
text(_) ->
    error.

arg(A) when is_binary(A); is_list(A) ->
    case text(A) of
        {ok, B} ->
            {Name, Value} =
                case binary:split(B, <<"=">>) of
                    [N, V] -> {string:lowercase(N), V};
                    [_] -> {<<>>, B}
                end,
            case {lists:member(Name, ?SECRET_ARGS), binary:match(Name, <<"://">>), binary:match(Value, <<"://">>)} of
                {true, _, _} -> <<Name/binary, "=", ?HIDDEN/binary>>;
                %% a URL whose query has a `=' in it
                {false, {_, _}, _} -> url(B);
                {false, nomatch, nomatch} -> A;
                {false, nomatch, _} when Name =:= <<>> -> url(Value);
                {false, nomatch, _} -> <<Name/binary, "=", (url(Value))/binary>>
            end;
        error ->
            A
    end;
arg(A) ->
    A.
