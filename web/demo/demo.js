// Atrium dev-mode demo: join a room with the unmodified twilio-video SDK.
//
// 1. POST /dev/token mints an Access Token for the dev account (dev mode only) and says where
//    the signaling WebSocket is.
// 2. Twilio.Video.connect() joins with camera and microphone; a LocalDataTrack carries chat.
// 3. One tile per participant: our own preview, and each remote participant's subscribed
//    audio/video tracks, removed again on unsubscribe and disconnect.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const ui = {
    joinForm: $("#join-form"),
    identity: $("#identity"),
    room: $("#room"),
    join: $("#join"),
    leave: $("#leave"),
    status: $("#status"),
    tiles: $("#tiles"),
    messages: $("#messages"),
    chatForm: $("#chat-form"),
    chatInput: $("#chat-input"),
    chatSend: $("#chat-send"),
  };

  let room = null; // the connected Twilio.Video.Room
  let dataTrack = null; // our LocalDataTrack, for chat

  // UI helpers ----------------------------------------------------------------------------------
  function setStatus(text, isError = false) {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", isError);
  }

  function setConnected(connected) {
    ui.identity.disabled = ui.room.disabled = ui.join.disabled = connected;
    ui.join.hidden = connected;
    ui.leave.hidden = !connected;
    ui.chatInput.disabled = ui.chatSend.disabled = !connected;
  }

  function addMessage(from, text) {
    const item = document.createElement("li");
    if (from) {
      const name = document.createElement("span");
      name.className = "from";
      name.textContent = `${from}: `;
      item.append(name, text);
    } else {
      item.className = "system";
      item.textContent = text;
    }
    ui.messages.append(item);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // Tiles -----------------------------------------------------------------------------------------
  function createTile(participant, isLocal) {
    const tile = document.createElement("div");
    tile.className = isLocal ? "tile local" : "tile remote";
    tile.dataset.identity = participant.identity;
    tile.dataset.sid = participant.sid;
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = isLocal ? `${participant.identity} (you)` : participant.identity;
    tile.append(label);
    ui.tiles.append(tile);
    return tile;
  }

  function tileOf(participant) {
    return ui.tiles.querySelector(`.tile[data-sid="${CSS.escape(participant.sid)}"]`);
  }

  function attachTrack(track, tile) {
    // The label stays on top of the media elements.
    if (track.kind === "audio" || track.kind === "video") tile.prepend(track.attach());
  }

  function detachTrack(track) {
    if (track.kind === "audio" || track.kind === "video") {
      track.detach().forEach((element) => element.remove());
    }
  }

  // Remote participants -------------------------------------------------------------------------
  function participantConnected(participant) {
    const tile = createTile(participant, false);
    const subscribed = (track) => {
      if (track.kind === "data") {
        track.on("message", (data) => addMessage(participant.identity, String(data)));
      } else {
        attachTrack(track, tile);
      }
    };
    participant.tracks.forEach((publication) => {
      if (publication.track) subscribed(publication.track);
    });
    participant.on("trackSubscribed", subscribed);
    participant.on("trackUnsubscribed", detachTrack);
  }

  function participantDisconnected(participant) {
    participant.tracks.forEach((publication) => {
      if (publication.track) detachTrack(publication.track);
    });
    const tile = tileOf(participant);
    if (tile) tile.remove();
    addMessage(null, `${participant.identity} left`);
  }

  // Joining and leaving -------------------------------------------------------------------------
  async function fetchToken(identity, roomName) {
    const response = await fetch("/dev/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ identity, room: roomName }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `POST /dev/token: HTTP ${response.status}`);
    return body;
  }

  async function join(event) {
    event.preventDefault();
    const identity = ui.identity.value.trim();
    const roomName = ui.room.value.trim();
    if (!identity || !roomName) return;
    ui.identity.disabled = ui.room.disabled = ui.join.disabled = true;
    try {
      setStatus("Getting a token…");
      const { token, wsServer } = await fetchToken(identity, roomName);
      setStatus(`Connecting to ${roomName}…`);
      room = await Twilio.Video.connect(token, {
        name: roomName,
        wsServer,
        insights: false,
        iceServers: [],
        audio: true,
        video: { width: 640 },
      });
    } catch (error) {
      setConnected(false);
      setStatus(`Could not join: ${describe(error)}`, true);
      return;
    }
    joined(room);
  }

  function joined(connected) {
    setConnected(true);
    setStatus(`In room ${connected.name} as ${connected.localParticipant.identity}`);
    addMessage(null, `You joined ${connected.name}`);
    history.replaceState(null, "", `?room=${encodeURIComponent(connected.name)}`);

    const local = connected.localParticipant;
    const localTile = createTile(local, true);
    local.videoTracks.forEach((publication) => attachTrack(publication.track, localTile));

    dataTrack = new Twilio.Video.LocalDataTrack();
    local.publishTrack(dataTrack).catch((error) => {
      addMessage(null, `Chat unavailable: ${describe(error)}`);
    });

    connected.participants.forEach((participant) => {
      participantConnected(participant);
      addMessage(null, `${participant.identity} is here`);
    });
    connected.on("participantConnected", (participant) => {
      participantConnected(participant);
      addMessage(null, `${participant.identity} joined`);
    });
    connected.on("participantDisconnected", participantDisconnected);
    connected.on("disconnected", (_room, error) => left(connected, error));
  }

  function left(disconnected, error) {
    disconnected.localParticipant.tracks.forEach((publication) => {
      if (publication.track.stop) publication.track.stop();
      detachTrack(publication.track);
    });
    disconnected.participants.forEach((participant) => {
      participant.tracks.forEach((publication) => {
        if (publication.track) detachTrack(publication.track);
      });
    });
    ui.tiles.replaceChildren();
    room = null;
    dataTrack = null;
    setConnected(false);
    if (error) {
      setStatus(`Disconnected: ${describe(error)}`, true);
    } else {
      setStatus("You left the room.");
    }
    addMessage(null, "You left");
  }

  function describe(error) {
    if (error && error.code) return `${error.message} (${error.code})`;
    return String((error && error.message) || error);
  }

  // Chat ------------------------------------------------------------------------------------------
  function sendChat(event) {
    event.preventDefault();
    const text = ui.chatInput.value.trim();
    if (!text || !dataTrack) return;
    dataTrack.send(text);
    addMessage(`${room.localParticipant.identity} (you)`, text);
    ui.chatInput.value = "";
  }

  // Start -----------------------------------------------------------------------------------------
  if (!window.Twilio || !Twilio.Video) {
    setStatus("twilio-video did not load (is it installed? bash scripts/install-browser-deps.sh)", true);
    ui.join.disabled = true;
    return;
  }
  ui.room.value = new URLSearchParams(location.search).get("room") || "demo";
  ui.joinForm.addEventListener("submit", join);
  ui.leave.addEventListener("click", () => room && room.disconnect());
  ui.chatForm.addEventListener("submit", sendChat);
  window.addEventListener("pagehide", () => room && room.disconnect());
})();
