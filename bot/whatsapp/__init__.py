"""The WhatsApp channel: a salon's own number through the gateway (core.whatsapp), the dialog's
answers as numbered text menus, and sending with good manners. No loyalty logic lives here."""
