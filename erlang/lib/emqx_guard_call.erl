%% @doc How the door to EMQX (`emqx_guard_emqx') calls a function that some EMQX release may lack
%% or that may fail: whether it is there (`exported/3', looked up with `code:ensure_loaded/1' and
%% `erlang:function_exported/3', never by version number), and a call whose exception or
%% unexpected result is logged (`emqx_guard_emqx_call_failed') and replaced by a fallback
%% (`guarded/2', `checked/3'). Calls nothing of EMQX itself: the calls are the funs the door
%% hands in, so the door stays the one module whose code calls EMQX. Also the door's small text
%% conversions (`text/1', `binary/1', `escape_tilde/1') and the layout of a usage listing where
%% EMQX has none to print it (`usage_text/1').
-module(emqx_guard_call).

-include_lib("kernel/include/logger.hrl").

-export([exported/3, guarded/2, checked/3, text/1, binary/1, escape_tilde/1, usage_text/1]).

%% @doc Whether Mod is loaded (or loadable) and exports Fun/Arity.
-spec exported(module(), atom(), arity()) -> boolean().
exported(Mod, Fun, Arity) ->
    case code:ensure_loaded(Mod) of
        {module, Mod} -> erlang:function_exported(Mod, Fun, Arity);
        {error, _} -> false
    end.

%% @doc Runs F; any exception or result other than `ok' is logged under Call, and the answer is
%% `ok' whatever happened.
-spec guarded(atom(), fun(() -> term())) -> ok.
guarded(Call, F) ->
    _ = checked(Call, F, fun(Result) -> Result =:= ok end),
    ok.

%% @doc Runs F: `{ok, Value}' when Accept(Value), else (an exception included) logged under Call
%% and `error'.
-spec checked(atom(), fun(() -> Value), fun((Value) -> boolean())) -> {ok, Value} | error.
checked(Call, F, Accept) ->
    try F() of
        Value ->
            case Accept(Value) of
                true ->
                    {ok, Value};
                false ->
                    ?LOG_WARNING(#{msg => emqx_guard_emqx_call_failed, call => Call, result => Value}),
                    error
            end
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => emqx_guard_emqx_call_failed, call => Call, exception => Class, reason => Reason}),
            error
    end.

%% @doc Text (a charlist, binary or atom; anything else printed short) as a flat charlist.
-spec text(term()) -> string().
text(L) when is_list(L) ->
    case unicode:characters_to_list(L) of
        S when is_list(S) -> S;
        _ -> lists:flatten(io_lib:format("~tp", [L]))
    end;
text(B) when is_binary(B) ->
    text([B]);
text(A) when is_atom(A) ->
    atom_to_list(A);
text(Other) ->
    lists:flatten(io_lib:format("~tp", [Other])).

%% @doc `text/1' as a UTF-8 binary.
-spec binary(term()) -> binary().
binary(B) when is_binary(B) ->
    B;
binary(Other) ->
    unicode:characters_to_binary(text(Other)).

%% @doc Str with every `~' doubled, for a text EMQX hands to io:format as a format.
-spec escape_tilde(string()) -> string().
escape_tilde(Str) ->
    lists:flatmap(
        fun
            ($~) -> "~~";
            (C) -> [C]
        end,
        Str
    ).

%% @doc A usage listing as `emqx_ctl:usage/1' lays it out: the command column padded to the
%% widest command plus one, then `# Description', one line each.
-spec usage_text([{string(), string()}]) -> string().
usage_text(Plain) ->
    Width = lists:max([0 | [string:length(C) || {C, _} <- Plain]]) + 1,
    lists:append([lists:flatten(io_lib:format("~ts# ~ts~n", [string:pad(C, Width), D])) || {C, D} <- Plain]).
